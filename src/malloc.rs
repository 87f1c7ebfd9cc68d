//! How glibc's allocator keeps memory it no longer needs.
//!
//! A service runs for years; what it must not do is hold on to the memory of
//! its busiest minute. glibc does two things that make it so, and `run`
//! turns both off before it starts any thread:
//!
//! - **Arenas.** Threads get their own malloc arenas, up to eight per core,
//!   and an arena keeps the pages it once needed. The client's threads come
//!   and go (the blocking pool that reads files and writes the spool lets
//!   idle threads end after 10 s), so more and more arenas each hold a
//!   little: in the 30-minute soak the CSV client's RSS climbed in steps from
//!   14.9 to 23.5 MiB (20.6 MiB after ten minutes). Limited to two arenas, a
//!   ten-minute soak ends at 16.6 MiB with the same median in its first and
//!   last thirds. A service with a handful of busy threads gains nothing
//!   from more.
//! - **The sliding trim threshold.** When a large block is freed, glibc
//!   raises its mmap and trim thresholds (up to 32 MiB) and from then on
//!   keeps that much free memory in the heap. After importing a 1 GB file
//!   and then 10,000 small ones, the client sat idle at 65.2 MiB RSS with a
//!   peak of live heap near 13 MiB (heaptrack). With the trim threshold
//!   fixed at 128 KiB (which also fixes the mmap threshold at its default),
//!   it sat at 24.4 MiB, at the same import speed (`scripts/bench-csv`).
//!
//! An admin's own `MALLOC_ARENA_MAX`, `MALLOC_TRIM_THRESHOLD_` or
//! `MALLOC_MMAP_THRESHOLD_` is left alone.

/// Arenas `run` allows when the environment does not say otherwise.
pub const ARENAS: i32 = 2;
/// Free memory at the top of the heap that is returned to the system.
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Sets the limits above; call before any thread starts. A no-op elsewhere
/// than glibc (musl, macOS and Windows allocators behave otherwise) and for
/// each setting the environment already makes.
pub fn limit_retained_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before `run` starts any thread, and glibc serialises it anyway.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            }
            if unset("MALLOC_TRIM_THRESHOLD_") && unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
    }
}
