use std::process::ExitCode;

// charter allocates many small objects (one per customer field, per license value, per
// diagnostic); mimalloc is markedly faster than the system allocator at that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    charter::cli::main()
}
