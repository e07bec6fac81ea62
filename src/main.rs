use std::process::ExitCode;

// charter allocates many small objects (one per customer field, per license value, per
// diagnostic); mimalloc is markedly faster than the system allocator at that. It is built
// without transparent huge pages (`no_thp`): a command lives for milliseconds, and the kernel
// zeroing a 2 MiB page at the first touch of each took half the time of checking 100 KB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    charter::cli::main()
}
