//! Panics of the Parquet reader, contained.
//!
//! polars-parquet 0.55.2 panics on some corrupt footers instead of
//! returning an error (`file_metadata_thrift.rs`: `expect("thrift bool
//! field")` on a statistics field of the wrong type, found by the `profile`
//! fuzz target). A profile is outside input, so reading one must fail with
//! a line naming the file, never with a panic: [`contained`] runs a read,
//! turns a panic into an error, and keeps the panic's message off stderr.
use std::{
    cell::Cell,
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `read`; a panic inside it becomes `Err` with its message.
///
/// # Errors
/// The panic's message, when `read` panicked.
pub fn contained<T>(read: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(read));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the Parquet reader failed".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        assert_eq!(contained(|| 7), Ok(7));
        let err = contained(|| -> u8 { panic!("thrift bool field") });
        assert_eq!(err, Err("thrift bool field".to_owned()));
    }
}
