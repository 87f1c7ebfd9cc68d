//! The Windows ACL of a file that holds secrets (the credentials): the
//! Windows counterpart of the 0600 mode every state file gets on Unix.
//! Compiled for Windows only (`state::atomic::write_secret_json_atomic`).

use std::io;
use std::path::Path;

use crate::win32::wide;

/// SYSTEM and the Administrators group only, nothing inherited from the
/// folder: the security descriptor the credentials file gets.
const SYSTEM_AND_ADMINISTRATORS: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// Sets the ACL of `path` to SYSTEM and Administrators only (the Windows
/// counterpart of mode 0600), before any secret is written to it.
pub fn restrict_to_system_and_administrators(path: &Path) -> io::Result<()> {
    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
        SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    let sddl = wide(SYSTEM_AND_ADMINISTRATORS);
    let wide_path = wide(path);
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated UTF-16 that outlives the call; on
    // success `descriptor` points to memory we free with LocalFree below.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `descriptor` is the valid descriptor made above; `dacl` points
    // into it and is used before it is freed.
    let result = unsafe {
        if GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) == 0 {
            Err(io::Error::last_os_error())
        } else {
            match SetNamedSecurityInfoW(
                wide_path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            ) {
                ERROR_SUCCESS => Ok(()),
                error => Err(io::Error::from_raw_os_error(error as i32)),
            }
        }
    };
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(descriptor) };
    result
}
