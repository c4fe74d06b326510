//! The process's allocator settings (glibc), made before any thread starts.
//!
//! With glibc's defaults a node following 10 topics × 100 workers held some 40 MiB more than
//! its heap (`chorus-testbeds bench footprint`, BENCHMARKS "Where a node's memory goes"):
//! - every thread that meets contention gets its own arena (up to 8 per core), and memory
//!   freed in one arena is not reused by the others: the node's runtime and store threads
//!   allocate and free in different threads. Two arenas are enough on any machine;
//! - the threshold above which an allocation gets its own mapping grows with each large
//!   block freed (up to 32 MiB), so the ledger snapshots and proofs (megabytes, every few
//!   heights) end up in the arenas, which fragment around them and are rarely trimmed. A
//!   fixed 128 KiB threshold gives every large block back to the system when it is freed.
//!
//! An operator's own choice wins: nothing is changed when `GLIBC_TUNABLES` or a `MALLOC_*`
//! variable is set.

/// Apply the settings (a no-op off glibc, or when the environment sets the allocator).
pub fn configure() {
    let chosen = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k == "GLIBC_TUNABLES" || k.starts_with("MALLOC_")
    });
    if !chosen {
        set();
    }
}

/// Largest allocation served from an arena; larger ones are mapped and unmapped on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Arenas for the whole process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: i32 = 2;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set() {
    // SAFETY: `mallopt` takes two integers and touches no memory of ours; it is called at the
    // start of `main`, before any other thread exists. It returns 0 when glibc refuses a
    // value, which leaves its default in place: nothing to undo.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set() {}
