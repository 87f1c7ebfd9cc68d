//! Who holds a TCP port, for the "port in use by …" error.
//!
//! Linux: the listening socket's inode from `/proc/net/tcp{,6}`, then the
//! process with that socket among its open files. Best effort: another
//! user's process is only found when we run as root; elsewhere (Windows)
//! `None`, and the message says "another program". No crate does this
//! portably without pulling in a whole system-information library.

/// `process 1234 (injixo-cloud-link)`, if it can be found.
pub fn describe(port: u16) -> Option<String> {
    imp::describe(port)
}

/// Inodes of sockets listening on `port` in a `/proc/net/tcp` table. Pure.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == LISTEN)
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs;

    pub fn describe(port: u16) -> Option<String> {
        let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|t| fs::read_to_string(t).ok())
            .flat_map(|t| super::listening_inodes(&t, port))
            .collect();
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        for process in fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = process
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = fs::read_dir(process.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else {
                    continue;
                };
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    let name = fs::read_to_string(process.path().join("comm")).unwrap_or_default();
                    let cwd = fs::read_link(process.path().join("cwd"))
                        .map(|c| format!(", folder {}", c.display()))
                        .unwrap_or_default();
                    return Some(format!("process {pid} ({}{cwd})", name.trim()));
                }
            }
        }
        None
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn describe(_port: u16) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_socket_of_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:25D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:25D5 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 9685), vec![4242]);
        assert_eq!(listening_inodes(table, 8080), vec![4444]);
        assert!(listening_inodes(table, 1).is_empty());
    }
}
