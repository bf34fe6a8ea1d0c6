//! One `process` scrape over a synthetic host of 10,000 processes (time, and
//! allocations per scrape printed before the timings), and the system scrapers on
//! this machine's `/proc`.
//!   cargo bench --bench hostmetrics

#![allow(clippy::panic)]

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ocelot::receivers::hostmetrics::{HostmetricsConfig, Scrape};

/// mimalloc (as the agent), counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PROCESSES: u32 = 10_000;

/// A host tree like a busy node's: /proc/stat, meminfo, and per process stat,
/// status, cmdline, io, exe and a few fds; /etc/passwd.
fn synthetic_host(root: &Path) {
    let write = |path: &Path, text: &[u8]| {
        std::fs::create_dir_all(path.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    let proc = root.join("proc");
    write(&proc.join("stat"), b"cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nbtime 1763790000\nprocesses 99999\nprocs_running 3\nprocs_blocked 0\n");
    write(&proc.join("meminfo"), b"MemTotal: 65536000 kB\nMemFree: 1000 kB\nMemAvailable: 30000000 kB\n");
    write(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n");
    for pid in 1..=PROCESSES {
        let dir = proc.join(pid.to_string());
        let comm = format!("worker-{}", pid % 97);
        // Some busy, most idle; memory spread so that ranking has work to do.
        let (utime, stime) = ((pid * 7919) % 50_000, (pid * 104_729) % 20_000);
        let stat = format!(
            "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 {} 0 {} 0 {utime} {stime} 0 0 20 0 {} 0 {} {} {} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 {} 0 0\n",
            pid * 3,
            pid % 11,
            1 + pid % 16,
            100 + pid,
            (pid as u64) << 20,
            (pid * 37) % 100_000,
            pid % 5
        );
        write(&dir.join("stat"), stat.as_bytes());
        write(
            &dir.join("cmdline"),
            format!("/usr/bin/{comm}\0--id\0{pid}\0--config\0/etc/app/{comm}.yaml\0").as_bytes(),
        );
        let uid = if pid % 2 == 0 { 0 } else { 1000 };
        write(
            &dir.join("status"),
            format!("Name:\t{comm}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nThreads:\t4\nvoluntary_ctxt_switches:\t100\nnonvoluntary_ctxt_switches:\t5\n").as_bytes(),
        );
        write(&dir.join("io"), b"rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n");
        std::os::unix::fs::symlink(format!("/usr/bin/{comm}"), dir.join("exe")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.join("fd")).unwrap_or_else(|e| panic!("{e}"));
        for fd in 0..3 {
            std::os::unix::fs::symlink("/dev/null", dir.join(format!("fd/{fd}"))).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn config(yaml: &str) -> HostmetricsConfig {
    let node = ocelot::config::node::parse("bench.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    ocelot::component::parse_config(&node).unwrap_or_else(|e| panic!("{e}"))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Allocations and bytes allocated by one call.
fn allocations(f: impl FnOnce()) -> (u64, u64) {
    let (n, b) = (ALLOCATIONS.load(Ordering::Relaxed), ALLOCATED_BYTES.load(Ordering::Relaxed));
    f();
    (ALLOCATIONS.load(Ordering::Relaxed) - n, ALLOCATED_BYTES.load(Ordering::Relaxed) - b)
}

fn hostmetrics(c: &mut Criterion) {
    // In memory, as /proc is (tmpfs where there is one): the cost measured is ocelot's
    // and the system calls', not a disk file system's.
    let shm = Path::new("/dev/shm");
    let host = match shm.is_dir() {
        true => tempfile::Builder::new().prefix("ocelot-bench").tempdir_in(shm),
        false => tempfile::tempdir(),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    synthetic_host(host.path());
    let process = config(&format!("root_path: {}\nscrapers:\n  process:\n", host.path().display()));
    let mut group = c.benchmark_group("hostmetrics");
    group.sample_size(20);

    let mut steady = Scrape::new(&process).unwrap_or_else(|e| panic!("{e}"));
    let (first, _) = allocations(|| {
        let (request, report) = steady.run(now());
        assert_eq!(request.resource_metrics.len(), 1000, "{report:?}");
    });
    let (n, bytes) = allocations(|| {
        steady.run(now());
    });
    eprintln!(
        "process scrape of {PROCESSES} processes, 1000 emitted: first scrape {first} allocations; \
         steady {n} allocations, {} KiB (the output included)",
        bytes / 1024
    );
    group.bench_function("process_10k_steady", |b| b.iter(|| steady.run(now()).0.resource_metrics.len()));
    // The part every scrape pays for all processes: list them and read each `stat`.
    let mut walker = ocelot::receivers::hostmetrics::procfs::Walker::new(host.path());
    let mut table = ocelot::receivers::hostmetrics::procfs::Table::default();
    group.bench_function("process_table_10k", |b| {
        b.iter(|| {
            walker.walk(&mut table).unwrap_or_else(|e| panic!("{e}"));
            table.entries.len()
        })
    });
    group.bench_function("process_10k_first_scrape", |b| {
        b.iter_batched(
            || Scrape::new(&process).unwrap_or_else(|e| panic!("{e}")),
            |mut s| s.run(now()).0.resource_metrics.len(),
            BatchSize::LargeInput,
        )
    });
    // The same on this machine's own /proc, whatever runs here (benches/hostmetrics.sh
    // starts 10,000 sleeping processes first).
    let real = config("scrapers:\n  process:\n    mute_process_exe_error: true\n");
    let mut here = Scrape::new(&real).unwrap_or_else(|e| panic!("{e}"));
    let (request, report) = here.run(now());
    let seen = report.process.as_ref().map_or(0, |c| c.seen);
    eprintln!("this machine: {seen} processes, {} emitted", request.resource_metrics.len());
    group.bench_function("process_scrape_this_machine", |b| b.iter(|| here.run(now()).0.resource_metrics.len()));
    let mut walker = ocelot::receivers::hostmetrics::procfs::Walker::new(Path::new("/"));
    group.bench_function("process_table_this_machine", |b| {
        b.iter(|| {
            walker.walk(&mut table).unwrap_or_else(|e| panic!("{e}"));
            table.entries.len()
        })
    });
    let system =
        config("scrapers:\n  cpu:\n  memory:\n  load:\n  disk:\n  filesystem:\n  network:\n  paging:\n  processes:\n");
    let mut scrape = Scrape::new(&system).unwrap_or_else(|e| panic!("{e}"));
    group.bench_function("system_scrapers_this_machine", |b| b.iter(|| scrape.run(now()).0.resource_metrics.len()));
    group.finish();
}

criterion_group!(benches, hostmetrics);
criterion_main!(benches);
