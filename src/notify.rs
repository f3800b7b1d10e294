//! systemd notifications (being written on the `pi` branch).
pub fn ready() {}
pub fn reloading() {}
pub fn stopping() {}
