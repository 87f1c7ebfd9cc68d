//! How many arenas glibc's allocator may keep.
//!
//! glibc gives threads their own malloc arenas, up to eight per core, and an
//! arena keeps the pages it once needed for as long as the process lives.
//! The client's threads come and go (the blocking pool that reads files and
//! writes the spool lets idle threads end after 10 s), so over hours more
//! and more arenas each hold a little: in the 30-minute soak the CSV
//! client's RSS climbed in steps from 14.9 to 23.5 MiB (20.6 MiB after ten
//! minutes). Limited to two arenas, a ten-minute soak ends at 16.6 MiB with
//! the same median in its first and last thirds (16.5 MiB). A service with a
//! handful of busy threads gains nothing from more, so `run` sets that limit
//! before it starts any thread. An admin's own `MALLOC_ARENA_MAX` is left
//! alone.

/// Arenas `run` allows when the environment does not say otherwise.
pub const ARENAS: i32 = 2;

/// Limits glibc's malloc arenas to [`ARENAS`]; call before any thread
/// starts. A no-op elsewhere (musl, macOS and Windows do not keep per-thread
/// arenas this way) and when `MALLOC_ARENA_MAX` is set.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator parameter; it is called
        // before `run` starts any thread, and glibc serialises it anyway.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
