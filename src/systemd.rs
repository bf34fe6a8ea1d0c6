//! systemd's service notifications, as the plain `NOTIFY_SOCKET` datagram protocol
//! (`sd_notify(3)`): `READY=1`, `RELOADING=1`, `STOPPING=1` and the watchdog's
//! `WATCHDOG=1`. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::{debug, warn};

/// Where notifications go, when systemd asked for them.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace.
    pub fn from_env() -> Notifier {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        let address = match name.to_str().and_then(|n| n.strip_prefix('@')) {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name.as_bytes())
            }
            None => SocketAddr::from_pathname(&name),
        };
        let target = address.and_then(|address| UnixDatagram::unbound().map(|socket| (socket, address)));
        match target {
            Ok(target) => Notifier { target: Some(target) },
            Err(e) => {
                warn!(socket = ?name, error = %e, "NOTIFY_SOCKET is set but unusable; systemd will not hear from ocelot.");
                Notifier { target: None }
            }
        }
    }

    fn send(&self, state: &str) {
        let Some((socket, address)) = &self.target else { return };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), address) {
            warn!(error = %e, state, "Cannot notify systemd.");
        } else {
            debug!(state, "Notified systemd.");
        }
    }

    /// Every receiver listens: the service is up.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// A reload starts; [`Notifier::ready`] ends it. `MONOTONIC_USEC` as
    /// `Type=notify-reload` requires.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config", monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining the pipelines");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when systemd set it
    /// for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Some(pid) = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
        {
            return None;
        }
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct passed, nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// Sends `WATCHDOG=1` every `interval` for as long as the runtime runs this task: a
/// runtime too stuck to run it stops the pings, and systemd restarts the service.
pub async fn keep_alive(notifier: std::sync::Arc<Notifier>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        notifier.watchdog();
    }
}
