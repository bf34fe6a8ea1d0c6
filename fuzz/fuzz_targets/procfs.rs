//! The hostmetrics readers of /proc files (and the host's /etc/passwd) on any bytes:
//! no panic; what parses keeps the invariants the scrapers rely on. The first byte
//! picks the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocelot::receivers::hostmetrics::{cpu, disk, filesystem, load, memory, network, paging, process, procfs};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(bytes);
    match which % 12 {
        0 => {
            if let Ok(cpus) = cpu::parse_stat(&text) {
                assert!(!cpus.is_empty());
            }
        }
        1 => {
            let info = cpu::parse_cpuinfo(&text);
            assert!(info.physical <= info.logical.max(info.physical));
        }
        2 => {
            if let Ok(info) = memory::parse_meminfo(&text) {
                assert!(info.contains_key("MemTotal"));
            }
        }
        3 => {
            if let Ok(load) = load::parse_loadavg(&text) {
                assert!(load.iter().all(|v| v.is_finite() && *v >= 0.0));
            }
        }
        4 => {
            for d in disk::parse_diskstats(&text) {
                assert!(!d.device.is_empty());
            }
        }
        5 => {
            let _ = filesystem::parse_mountinfo(&text);
            let _ = filesystem::parse_mounts(&text);
            let _ = filesystem::parse_device_filesystems(&text);
        }
        6 => {
            let _ = network::parse_net_dev(&text);
            let mut counts = [0u64; 12];
            network::count_tcp(std::io::Cursor::new(bytes), &mut counts);
            assert!(counts.iter().sum::<u64>() <= bytes.len() as u64);
        }
        7 => {
            let _ = paging::parse_swaps(&text);
            let _ = paging::parse_vmstat(&text);
        }
        8 | 9 => {
            if let Some(stat) = procfs::parse_pid_stat(bytes) {
                assert!(stat.comm().len() <= 64);
            }
        }
        10 => {
            let _ = process::status_field(bytes, b"Uid:");
            let _ = process::status_mask(bytes, b"SigPnd:");
        }
        _ => {
            let _ = process::parse_passwd(&text);
        }
    }
});
