//! The `cpu` scraper: `system.cpu.time{cpu,state}` from the `cpuN` lines of
//! `/proc/stat` (ticks of 1/100 s, as the kernel's USER_HZ), and
//! `system.cpu.utilization` from the change since the previous scrape.

use opentelemetry_proto::tonic::metrics::v1::Metric;

use super::{Tick, Toggles, attribute, gauge, int_point, point, read_proc, sum};

/// USER_HZ: `/proc/stat` counts in hundredths of a second on every Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// One CPU's times, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTimes {
    pub cpu: String,
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
    pub guest: f64,
    pub guest_nice: f64,
}

impl CpuTimes {
    /// (state, seconds), with the upstream state names (guest time is already counted
    /// in user and nice, so it is not a state).
    fn states(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("system", self.system),
            ("idle", self.idle),
            ("interrupt", self.irq),
            ("nice", self.nice),
            ("softirq", self.softirq),
            ("steal", self.steal),
            ("wait", self.iowait),
        ]
    }

    /// All time, guest included, as upstream's utilization denominator.
    fn total(&self) -> f64 {
        self.states().iter().map(|(_, v)| v).sum::<f64>() + self.guest + self.guest_nice
    }
}

/// The per-CPU lines of `/proc/stat` (the aggregate `cpu` line is skipped).
pub fn parse_stat(text: &str) -> Result<Vec<CpuTimes>, String> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(name) = fields.next() else { continue };
        if name == "cpu" || !name.starts_with("cpu") {
            continue;
        }
        let values: Vec<f64> = fields
            .map(|f| f.parse::<u64>().map(|t| t as f64 / TICKS_PER_SECOND))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("/proc/stat line `{name}`: {e}"))?;
        if values.len() < 4 {
            return Err(format!("/proc/stat line `{name}` has {} fields, at least 4 expected", values.len()));
        }
        let at = |i: usize| values.get(i).copied().unwrap_or(0.0);
        cpus.push(CpuTimes {
            cpu: name.to_string(),
            user: at(0),
            nice: at(1),
            system: at(2),
            idle: at(3),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
            guest: at(8),
            guest_nice: at(9),
        });
    }
    if cpus.is_empty() {
        return Err("/proc/stat has no cpuN lines".into());
    }
    Ok(cpus)
}

pub const METRICS: &[(&str, bool)] = &[
    ("system.cpu.time", true),
    ("system.cpu.utilization", false),
    ("system.cpu.physical.count", false),
    ("system.cpu.logical.count", false),
    ("system.cpu.frequency", false),
];

pub struct Scraper {
    toggles: Toggles,
    previous: Option<Vec<CpuTimes>>,
}

impl Scraper {
    pub fn new(toggles: Toggles) -> Scraper {
        Scraper { toggles, previous: None }
    }

    pub fn scrape(&mut self, tick: &Tick) -> Result<Vec<Metric>, String> {
        let on = |name| self.toggles.on(name);
        let mut out = Vec::new();
        if on("system.cpu.time") || on("system.cpu.utilization") {
            let cpus = parse_stat(tick.stat()?)?;
            out = metrics(&cpus, self.previous.as_deref(), &self.toggles, tick.boot, tick.now);
            self.previous = Some(cpus);
        }
        if on("system.cpu.physical.count") || on("system.cpu.logical.count") || on("system.cpu.frequency") {
            let info = parse_cpuinfo(&read_proc(tick.root, "cpuinfo")?);
            let count = |n: usize| vec![int_point(n as i64, vec![], tick.boot, tick.now)];
            if on("system.cpu.physical.count") {
                out.push(sum(
                    "system.cpu.physical.count",
                    "Number of available physical CPUs.",
                    "{cpu}",
                    false,
                    count(info.physical),
                ));
            }
            if on("system.cpu.logical.count") {
                out.push(sum(
                    "system.cpu.logical.count",
                    "Number of available logical CPUs.",
                    "{cpu}",
                    false,
                    count(info.logical),
                ));
            }
            if on("system.cpu.frequency") {
                let points = info
                    .mhz
                    .iter()
                    .map(|(cpu, mhz)| point(mhz * 1e6, vec![attribute("cpu", cpu)], 0, tick.now))
                    .collect();
                out.push(gauge("system.cpu.frequency", "Current frequency of the CPU core in Hz.", "Hz", points));
            }
        }
        Ok(out)
    }
}

/// What `/proc/cpuinfo` tells: logical CPUs, distinct physical cores, and each
/// CPU's current clock.
#[derive(Debug, Default, PartialEq)]
pub struct CpuInfo {
    pub logical: usize,
    pub physical: usize,
    pub mhz: Vec<(String, f64)>,
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut cores = std::collections::HashSet::new();
    let (mut processor, mut package, mut core) = (None, None, None);
    let mut finish = |processor: &mut Option<String>, package: &mut Option<String>, core: &mut Option<String>| {
        if let Some(p) = processor.take() {
            info.logical += 1;
            cores.insert((package.take().unwrap_or_default(), core.take().unwrap_or(p)));
        }
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            finish(&mut processor, &mut package, &mut core);
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => {
                finish(&mut processor, &mut package, &mut core);
                processor = Some(value.to_string());
            }
            "physical id" => package = Some(value.to_string()),
            "core id" => core = Some(value.to_string()),
            "cpu MHz" => {
                if let (Some(p), Ok(mhz)) = (&processor, value.parse::<f64>()) {
                    info.mhz.push((format!("cpu{p}"), mhz));
                }
            }
            _ => {}
        }
    }
    finish(&mut processor, &mut package, &mut core);
    info.physical = cores.len();
    info
}

/// `system.cpu.time`, and `system.cpu.utilization` when it is on and there was a
/// previous scrape (per CPU: the change of each state over the change of all time).
pub fn metrics(
    cpus: &[CpuTimes],
    previous: Option<&[CpuTimes]>,
    toggles: &Toggles,
    start: u64,
    now: u64,
) -> Vec<Metric> {
    let mut out = Vec::new();
    if toggles.on("system.cpu.time") {
        let times = cpus
            .iter()
            .flat_map(|c| {
                c.states()
                    .into_iter()
                    .map(|(state, v)| point(v, vec![attribute("cpu", &c.cpu), attribute("state", state)], start, now))
            })
            .collect();
        out.push(sum("system.cpu.time", "Total seconds each logical CPU spent on each mode.", "s", true, times));
    }
    if let (true, Some(previous)) = (toggles.on("system.cpu.utilization"), previous) {
        let mut points = Vec::new();
        for c in cpus {
            let Some(before) = previous.iter().find(|p| p.cpu == c.cpu) else { continue };
            let elapsed = c.total() - before.total();
            for ((state, now_v), (_, before_v)) in c.states().into_iter().zip(before.states()) {
                // iowait can go backwards (proc(5)): a negative change counts as none.
                let value = if elapsed > 0.0 { ((now_v - before_v) / elapsed).max(0.0) } else { 0.0 };
                points.push(point(value, vec![attribute("cpu", &c.cpu), attribute("state", state)], 0, now));
            }
        }
        out.push(gauge(
            "system.cpu.utilization",
            "Difference in system.cpu.time since the last measurement per logical CPU, divided by the elapsed time.",
            "1",
            points,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{fixture, read_proc, values};
    use super::*;

    #[test]
    fn golden_cpu_times_and_utilization() {
        let text = read_proc(&fixture(), "stat").unwrap();
        let cpus = parse_stat(&text).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!((cpus[0].user, cpus[0].idle, cpus[0].iowait, cpus[0].guest), (150.0, 4500.0, 10.0, 0.1));
        let all = Toggles::new(
            METRICS,
            &[("system.cpu.utilization".to_string(), crate::receivers::hostmetrics::config::Enabled { enabled: true })]
                .into(),
        );
        let m = metrics(&cpus, None, &all, 1, 2);
        assert_eq!(m.len(), 1, "no utilization on the first scrape");
        let v = values(&m[0]);
        assert_eq!(v.len(), 16);
        let get =
            |cpu: &str, state: &str| v.iter().find(|(a, _)| a[0].1 == cpu && a[1].1 == state).map(|(_, x)| *x).unwrap();
        assert_eq!(get("cpu1", "system"), 50.0);
        assert_eq!(get("cpu1", "interrupt"), 0.5);
        assert_eq!(get("cpu0", "steal"), 0.25);
        // One second later cpu0 was busy in user for 0.5 s and idle for 0.5 s.
        let mut later = cpus.clone();
        later[0].user += 0.5;
        later[0].idle += 0.5;
        let m = metrics(&later, Some(&cpus), &all, 1, 3);
        let u = values(&m[1]);
        let util =
            |cpu: &str, state: &str| u.iter().find(|(a, _)| a[0].1 == cpu && a[1].1 == state).map(|(_, x)| *x).unwrap();
        assert_eq!((util("cpu0", "user"), util("cpu0", "idle"), util("cpu1", "user")), (0.5, 0.5, 0.0));
    }

    #[test]
    fn cpuinfo_counts_and_frequency() {
        let info = parse_cpuinfo(&read_proc(&fixture(), "cpuinfo").unwrap());
        assert_eq!(info.logical, 4);
        assert_eq!(info.physical, 2, "two cores with two threads each");
        assert_eq!(info.mhz[3], ("cpu3".to_string(), 2400.5));
        let arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\nBogoMIPS\t: 50\n");
        assert_eq!((arm.logical, arm.physical), (2, 2));
    }

    #[test]
    fn malformed_stat_is_an_error_not_a_panic() {
        assert!(parse_stat("cpu0 1 2 x 4\n").is_err());
        assert!(parse_stat("cpu0 1 2\n").is_err());
        assert!(parse_stat("intr 1\n").is_err());
    }
}
