// SIGINT and SIGTERM, caught the same way in every sgs process: a training
// run finishes its step, writes a checkpoint and stops (status interrupted);
// the suite and the --nproc launcher pass the signal on to their children and
// wait for them to do so.
#pragma once

namespace sgs {

// Installs the handlers (SA_RESTART: system calls in progress are resumed)
// and forgets any signal caught before; a signal is latched (caught_interrupt).
void catch_interrupts();

// For a run's start-up, while it has written nothing: installs the handlers
// so that a signal ends the process at once with status 128+N (however long
// the step it interrupts: reading a dataset, starting threads, waiting for
// other ranks), until latch_interrupts().
void exit_on_interrupts();

// From now on a signal is latched, not fatal (a run about to write). A
// signal caught before is kept.
void latch_interrupts();

// The signal caught since catch_interrupts() or exit_on_interrupts(), 0 if none.
int caught_interrupt();

}  // namespace sgs
