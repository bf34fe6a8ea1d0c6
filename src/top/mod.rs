//! `ocelot top`: a live view of a running agent, read from its self-metrics endpoint.
//! Per receiver, processor and exporter the items per second in and out; refusals and
//! drops by reason; exporter queue fill; the memory_limiter's level; the process's CPU
//! and RSS. It scrapes every `--interval`, sleeps on the terminal's input in between
//! (no polling), and quits on `q`, Esc or Ctrl-C.

pub mod scrape;
pub mod view;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};

use scrape::{Target, parse};
use view::{Overview, Snapshot};

/// Runs the view until the user quits; an error if `url` is not one or no terminal is
/// there to draw on. An agent that does not answer is shown as such, and retried.
pub fn run(url: &str, interval: Duration) -> Result<(), String> {
    let target = Target::parse(url)?;
    if !std::io::stdout().is_terminal() {
        return Err("ocelot top draws on a terminal; stdout is not one".into());
    }
    let interval = interval.max(Duration::from_millis(100));
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = watch(&mut terminal, &target, interval);
    ratatui::restore();
    result
}

fn watch(terminal: &mut ratatui::DefaultTerminal, target: &Target, interval: Duration) -> Result<(), String> {
    let mut previous: Option<Snapshot> = None;
    let mut overview = Overview::default();
    loop {
        let error = match target.fetch(interval.max(Duration::from_secs(1))) {
            Ok(body) => {
                let (samples, unreadable) = parse(&body);
                let snapshot = Snapshot::new(Instant::now(), samples, unreadable);
                overview = Overview::new(previous.as_ref(), &snapshot);
                previous = Some(snapshot);
                None
            }
            Err(e) => Some(e),
        };
        let deadline = Instant::now() + interval;
        loop {
            terminal.draw(|frame| draw(frame, target, &overview, error.as_deref())).map_err(|e| e.to_string())?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).map_err(|e| e.to_string())? {
                break;
            }
            match event::read().map_err(|e| e.to_string())? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                        return Ok(());
                    }
                }
                // A resize (or any other event) redraws what is there.
                _ => {}
            }
        }
    }
}

/// `1234.5` as `1.2k`; `None` (no rate yet) as `…`.
fn per_second(value: Option<f64>) -> String {
    match value {
        None => "…".into(),
        Some(v) if v >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v >= 1e4 => format!("{:.0}k", v / 1e3),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) if v >= 10.0 || v == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn bytes(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= (1u64 << 30) as f64 => format!("{:.1} GiB", v / (1u64 << 30) as f64),
        Some(v) if v >= (1u64 << 20) as f64 => format!("{:.1} MiB", v / (1u64 << 20) as f64),
        Some(v) if v >= 1024.0 => format!("{:.1} KiB", v / 1024.0),
        Some(v) => format!("{v:.0} B"),
    }
}

fn table<'a>(title: &'a str, header: &'a [&'a str], rows: Vec<Row<'a>>, widths: &'a [Constraint]) -> Table<'a> {
    let empty = rows.is_empty();
    let rows = if empty { vec![Row::new(["(none)"])] } else { rows };
    Table::new(rows, widths.to_vec())
        .header(Row::new(header.to_vec()).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::bordered().title(title))
}

fn draw(frame: &mut Frame, target: &Target, view: &Overview, error: Option<&str>) {
    let levels = if view.memory_levels.is_empty() {
        "no memory_limiter".to_string()
    } else {
        view.memory_levels.iter().map(|(id, level)| format!("{id} level {level:.0}")).collect::<Vec<_>>().join(", ")
    };
    let cpu = view.cpu_percent.map(|c| format!("{c:.1}%")).unwrap_or_else(|| "…".into());
    let uptime = view.uptime_seconds.map(|s| format!("{}s", s as u64)).unwrap_or_else(|| "-".into());
    let mut status = vec![
        Line::from(vec![
            Span::styled("ocelot top ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!("http://{}{}   q quits", target.authority, target.path)),
        ]),
        Line::from(format!(
            "process: CPU {cpu}  RSS {}  up {uptime}   memory: {levels}, governor reads {}",
            bytes(view.rss_bytes),
            bytes(view.governor_bytes)
        )),
    ];
    if let Some(error) = error {
        status.push(Line::styled(format!("not answering: {error}"), Style::new().fg(Color::Red)));
    } else if view.unreadable > 0 {
        status.push(Line::from(format!("{} lines of the endpoint were not samples it could read", view.unreadable)));
    }

    let receivers: Vec<Row> =
        view.receivers.iter().map(|r| Row::new([r.id.clone(), per_second(r.first), per_second(r.second)])).collect();
    let processors: Vec<Row> =
        view.processors.iter().map(|r| Row::new([r.id.clone(), per_second(r.first), per_second(r.second)])).collect();
    let exporters: Vec<Row> = view
        .exporters
        .iter()
        .map(|e| {
            let fill = match (e.queue_fill, e.queue_size) {
                (Some(fill), Some(size)) => format!("{:.0}% ({size:.0})", fill * 100.0),
                _ => "-".into(),
            };
            Row::new([
                e.id.clone(),
                per_second(e.sent),
                per_second(e.failed),
                per_second(e.enqueue_failed),
                fill,
                bytes(e.queue_bytes),
            ])
        })
        .collect();
    let drops: Vec<Row> = view
        .drops
        .iter()
        .map(|d| {
            Row::new([
                d.component.clone(),
                d.metric.clone(),
                d.reason.clone(),
                format!("{:.0}", d.total),
                per_second(d.per_second),
            ])
        })
        .collect();

    let heights = [
        Constraint::Length(status.len() as u16),
        Constraint::Length(view.receivers.len().max(1) as u16 + 3),
        Constraint::Length(view.processors.len().max(1) as u16 + 3),
        Constraint::Length(view.exporters.len().max(1) as u16 + 3),
        Constraint::Min(4),
    ];
    let [top, receivers_area, processors_area, exporters_area, drops_area] =
        Layout::vertical(heights).areas(frame.area());
    frame.render_widget(Paragraph::new(status), top);
    let three = [Constraint::Fill(2), Constraint::Length(12), Constraint::Length(12)];
    frame
        .render_widget(table("Receivers", &["receiver", "accepted/s", "refused/s"], receivers, &three), receivers_area);
    frame.render_widget(table("Processors", &["processor", "in/s", "out/s"], processors, &three), processors_area);
    let six = [
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(11),
    ];
    frame.render_widget(
        table("Exporters", &["exporter", "sent/s", "failed/s", "refused/s", "queue", "on disk"], exporters, &six),
        exporters_area,
    );
    let five =
        [Constraint::Fill(1), Constraint::Fill(2), Constraint::Fill(2), Constraint::Length(10), Constraint::Length(8)];
    frame.render_widget(
        table("Refused, failed and dropped", &["component", "counter", "reason", "total", "/s"], drops, &five),
        drops_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_at_a_glance() {
        assert_eq!(per_second(None), "…");
        assert_eq!(per_second(Some(0.0)), "0");
        assert_eq!(per_second(Some(0.25)), "0.2");
        assert_eq!(per_second(Some(950.0)), "950");
        assert_eq!(per_second(Some(1234.0)), "1.2k");
        assert_eq!(per_second(Some(12_345.0)), "12k");
        assert_eq!(per_second(Some(2_500_000.0)), "2.5M");
        assert_eq!(bytes(Some(1536.0)), "1.5 KiB");
        assert_eq!(bytes(Some(3.0 * 1048576.0)), "3.0 MiB");
    }
}
