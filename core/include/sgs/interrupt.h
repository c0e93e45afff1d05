// SIGINT and SIGTERM, caught the same way in every sgs process: a training
// run finishes its step, writes a checkpoint and stops (status interrupted);
// the suite and the --nproc launcher pass the signal on to their children and
// wait for them to do so.
#pragma once

namespace sgs {

// Installs the handlers (SA_RESTART: system calls in progress are resumed)
// and forgets any signal caught before.
void catch_interrupts();

// The signal caught since catch_interrupts() or clear_interrupt(), 0 if none.
int caught_interrupt();

void clear_interrupt();

}  // namespace sgs
