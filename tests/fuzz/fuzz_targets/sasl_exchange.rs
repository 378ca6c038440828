//! Fuzz target: shardlog::fuzzing::sasl_exchange must return normally for any input.
#![no_main]

// The broker's allocator guard, as in the real binary: a wire count must not abort us.
#[global_allocator]
static ALLOCATOR: shardlog::huge_alloc::LazyHugeAllocator = shardlog::huge_alloc::LazyHugeAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shardlog::fuzzing::sasl_exchange(data);
});
