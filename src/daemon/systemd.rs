//! systemd's `Type=notify` protocol: READY=1, STOPPING=1, STATUS=… and WATCHDOG=1 datagrams to
//! the socket named by `NOTIFY_SOCKET` (sd_notify(3)). Outside systemd the variable is unset and
//! every call does nothing.
//!
//! Why no crate: the protocol is one datagram of text per call, which std's `UnixDatagram`
//! sends in a few lines; a crate would add a dependency for no less code to read here.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace (Linux).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let address = socket_address(name.to_str()?)?;
            let socket = UnixDatagram::unbound().ok()?;
            Some((socket, address))
        });
        Notifier { target }
    }

    /// Tells no one (the demo runs the daemon in-process, not as a service).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn reloaded(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing polls and deliveries in flight");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        // systemd not listening (any more) must not stop the daemon: say so and go on.
        if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
            tracing::debug!(%error, "cannot notify systemd");
        }
    }
}

fn socket_address(name: &str) -> Option<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        return abstract_address(abstract_name);
    }
    SocketAddr::from_pathname(name).ok()
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes()).ok()
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &str) -> Option<SocketAddr> {
    None
}

/// How often to pet the watchdog: half of `WATCHDOG_USEC` (what sd_watchdog_enabled(3)
/// advises), when it is set for this process (`WATCHDOG_PID`, if present, is our pid).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(&usec, pid.as_deref(), std::process::id())
}

fn watchdog_interval_from(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec.trim().parse().ok().filter(|usec| *usec > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_petted_at_half_its_timeout_and_only_for_its_pid() {
        assert_eq!(
            watchdog_interval_from("20000000", None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval_from("1000", Some("7"), 7),
            Some(Duration::from_micros(500))
        );
        assert_eq!(watchdog_interval_from("1000", Some("8"), 7), None);
        assert_eq!(watchdog_interval_from("0", None, 7), None);
        assert_eq!(watchdog_interval_from("soon", None, 7), None);
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                socket_address(path.to_str().unwrap()).unwrap(),
            )),
        };
        notifier.ready("polling 1 resource");
        notifier.watchdog();
        let mut buffer = [0u8; 256];
        let read = listener.recv(&mut buffer).unwrap();
        assert_eq!(
            &buffer[..read],
            b"READY=1\nSTATUS=polling 1 resource".as_slice()
        );
        let read = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"WATCHDOG=1".as_slice());
    }
}
