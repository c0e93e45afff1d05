// A plugin library whose entry point throws something that is not a
// std::exception (the reliability tests load it with --plugin).
namespace sgs {
class Registry;
}

extern "C" void sgs_register_plugins(sgs::Registry*) { throw 42; }
