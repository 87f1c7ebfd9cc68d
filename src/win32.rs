//! What every Win32 call of the client needs: text as NUL-terminated
//! UTF-16 (`PCWSTR`). Compiled for Windows only.

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;

/// `text` as a NUL-terminated wide string, to pass as a `PCWSTR` for as long
/// as the returned vector lives.
pub fn wide(text: impl AsRef<OsStr>) -> Vec<u16> {
    text.as_ref().encode_wide().chain([0]).collect()
}
