//! Standard output and standard error. Every result charter prints goes through `out!` /
//! `outln!`, every message and diagnostic through `eout!` / `eoutln!` (defined in
//! `cli/mod.rs`), which write here.
//!
//! A reader that goes away (`charter compile | head -1`, or `2>&1 | head -1`) is not an error:
//! the first write that meets a closed pipe marks that stream closed, later writes to it are
//! dropped, and the command ends with its own exit code, as `cat` does. Any other failure to
//! write the output (a full disk) is said once on stderr and makes the command exit 1; a
//! failure to write stderr has nowhere to be said.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Standard output can no longer be written: the reader went away or writing failed.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Writing failed for another reason than a closed pipe.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Standard error can no longer be written.
static ERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to standard error, unless it is closed.
pub(crate) fn write_err(args: fmt::Arguments<'_>) {
    if ERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if io::stderr().lock().write_fmt(args).is_err() {
        ERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

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
        write_err(format_args!("error: cannot write the output: {error}\n"));
    }
}
