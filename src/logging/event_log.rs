//! The Windows Event Log as a tracing layer: what `event_filter` selects goes
//! to the Application log under the instance's source name ("injixo Cloud
//! Link", "injixo Cloud Link (Instance 1)"), besides the log file.
//!
//! The source is registered once (HKLM\...\EventLog\Application\<source>)
//! with .NET's `EventLogMessages.dll` as its message file, which every
//! Windows Server has and whose messages are just the text: without a
//! message file, Event Viewer shows the text after a complaint that the
//! description cannot be found. Registration needs Administrator rights (a
//! service has them); without them the events are still written.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::EventLog::{
    RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
    EVENTLOG_WARNING_TYPE,
};

use super::event_filter::{event_kind, EventKind};
use crate::win32::wide;

const MESSAGE_FILE: &str =
    r"%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll";

pub struct EventLogLayer {
    source: HANDLE,
}

// SAFETY: an event source handle may be used from any thread (ReportEventW
// is thread-safe); it is never closed while the process runs.
unsafe impl Send for EventLogLayer {}
unsafe impl Sync for EventLogLayer {}

impl EventLogLayer {
    /// Registers `source` if needed and opens it; `None` if Windows refuses
    /// (the log file still has everything).
    pub fn open(source: &str) -> Option<EventLogLayer> {
        register(source);
        let name = wide(source);
        // SAFETY: `name` is NUL-terminated UTF-16 that outlives the call.
        let handle = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
        (!handle.is_null()).then_some(EventLogLayer { source: handle })
    }
}

impl<S: Subscriber> Layer<S> for EventLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let Some(kind) = event_kind(*metadata.level(), metadata.target()) else {
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        let message = wide(text.0);
        let strings = [message.as_ptr()];
        let event_type = match kind {
            EventKind::Information => EVENTLOG_INFORMATION_TYPE,
            EventKind::Warning => EVENTLOG_WARNING_TYPE,
            EventKind::Error => EVENTLOG_ERROR_TYPE,
        };
        // SAFETY: the handle is open; one NUL-terminated string that
        // outlives the call; no binary data. A failure is not reported:
        // the same line is in the log file.
        unsafe {
            ReportEventW(
                self.source,
                event_type,
                0,
                kind.id(),
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            );
        }
    }
}

/// The record's message and fields, as the log file's line has them.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// Creates the source's registry key with its message file, once.
fn register(source: &str) {
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{
        RegCloseKey, RegCreateKeyExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE,
        REG_CREATED_NEW_KEY, REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
    };

    let key_name = wide(format!(
        r"SYSTEM\CurrentControlSet\Services\EventLog\Application\{source}"
    ));
    let mut key: HKEY = std::ptr::null_mut();
    let mut disposition = 0;
    // SAFETY: NUL-terminated name; out-pointers to locals.
    let created = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            key_name.as_ptr(),
            0,
            std::ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            std::ptr::null(),
            &mut key,
            &mut disposition,
        )
    };
    if created != ERROR_SUCCESS {
        return;
    }
    if disposition == REG_CREATED_NEW_KEY {
        let file = wide(MESSAGE_FILE);
        let types: u32 = 7; // error, warning, information
                            // SAFETY: the key is open for setting values; the data pointers
                            // and byte counts describe the locals above.
        unsafe {
            RegSetValueExW(
                key,
                wide("EventMessageFile").as_ptr(),
                0,
                REG_EXPAND_SZ,
                file.as_ptr().cast(),
                (file.len() * 2) as u32,
            );
            RegSetValueExW(
                key,
                wide("TypesSupported").as_ptr(),
                0,
                REG_DWORD,
                (&types as *const u32).cast(),
                4,
            );
        }
    }
    // SAFETY: opened above.
    unsafe { RegCloseKey(key) };
}
