// Seeds derived from the run's seed. Every random stream of a run (the data
// order, each example's augmentation, synthetic images, the splits, the
// strategies' batch draws) takes its seed from mix_seed, so that it depends on
// (seed, what it is for, where it is) and on nothing else: not on threads,
// ranks or the order in which streams are created.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace sgs {

// SplitMix64's output function of state x + golden gamma (Steele, Lea and
// Flood 2014): one step of the generator seeded with x.
constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A 64-bit tag naming what a stream is for (FNV-1a of the text).
constexpr uint64_t seed_tag(const char* text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char* p = text; *p != '\0'; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 0x100000001b3ULL;
  return h;
}

// The seed of a stream: s = splitmix64(seed), then s = splitmix64(s ^ v) for
// each value v in order (an epoch, a position, an index). Streams for
// different purposes mix their tag into the seed first: mix_seed(seed ^
// seed_tag("val"), {}).
constexpr uint64_t mix_seed(uint64_t seed, std::initializer_list<uint64_t> values = {}) {
  uint64_t s = splitmix64(seed);
  for (uint64_t v : values) s = splitmix64(s ^ v);
  return s;
}

}  // namespace sgs
