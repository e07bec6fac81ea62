//! Standard output. Every result charter prints goes through `out!` / `outln!` (defined in
//! `cli/mod.rs`), which write here.
//!
//! A reader that goes away (`charter compile | head -1`) is not an error: the first write that
//! meets a closed pipe marks standard output closed, later writes are dropped, and the command
//! ends with its own exit code, as `cat` does. Any other failure to write (a full disk) is
//! said once on stderr and makes the command exit 1.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Standard output can no longer be written: the reader went away or writing failed.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Writing failed for another reason than a closed pipe.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to standard output, unless it is closed.
pub(crate) fn write(args: fmt::Arguments<'_>) {
    if is_closed() {
        return;
    }
    if let Err(error) = io::stdout().lock().write_fmt(args) {
        failed_with(&error);
    }
}

/// Flushes standard output (the end of a command, or a line a reader waits for).
pub(crate) fn flush() {
    if is_closed() {
        return;
    }
    if let Err(error) = io::stdout().lock().flush() {
        failed_with(&error);
    }
}

/// Whether the output is gone, so that a long listing can stop computing what nobody reads.
pub(crate) fn is_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Whether writing failed for another reason than a reader that went away (exit 1).
pub(crate) fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// Records a failed write to standard output made outside `write` (a buffered stream).
pub(crate) fn failed_with(error: &io::Error) {
    if CLOSED.swap(true, Ordering::Relaxed) {
        return;
    }
    if error.kind() != io::ErrorKind::BrokenPipe {
        FAILED.store(true, Ordering::Relaxed);
        // stderr may be gone too; nothing more can be said then.
        let _ = writeln!(io::stderr(), "error: cannot write the output: {error}");
    }
}
