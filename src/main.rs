use std::process::ExitCode;

use clap::Parser;
use ocelot::app;
use ocelot::cli::{Cli, Command};
use ocelot::config::Severity;

fn main() -> ExitCode {
    return_freed_memory_soon();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { storage }) => {
            let config = app::validate(&cli.config);
            let storage = storage.map(|dir| app::validate_storage(&dir)).unwrap_or(0);
            return ExitCode::from(config.max(storage) as u8);
        }
        Some(Command::Components) => {
            print!("{}", app::components());
            return ExitCode::SUCCESS;
        }
        Some(Command::Top { url, interval }) => {
            return match ocelot::top::run(&url, interval) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ocelot top: {e}");
                    ExitCode::from(1)
                }
            };
        }
        None => {}
    }
    let loaded = app::load_config(&cli.config);
    let Some(config) = loaded.config else {
        for diagnostic in &loaded.diagnostics {
            eprintln!("{diagnostic}");
        }
        eprintln!("ocelot: the config is invalid; see `ocelot validate --config ...`");
        return ExitCode::from(1);
    };
    app::init_logging(cli.log_level.as_deref(), cli.log_format, Some(&config));
    for diagnostic in loaded.diagnostics.iter().filter(|d| d.severity == Severity::Warning) {
        tracing::warn!("{diagnostic}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(ocelot::pipeline::governor::on_worker_park)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ocelot: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let options = app::RunOptions {
        shutdown_timeout: cli.shutdown_timeout,
        storage_dir: cli.storage_dir,
        config_paths: cli.config,
        watch_config: cli.watch_config,
    };
    match runtime.block_on(app::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// mimalloc: OTLP decoding makes many small allocations (about 1.5x the throughput of
/// glibc's malloc end to end), and it returns freed memory to the system. Its arena
/// commit is set lazy in `.cargo/config.toml`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` (mimalloc.h's `mi_option_purge_delay`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 keeps freed pages for a second before returning them (`purge_delay`
/// 1000 ms). Data in flight is freed on other threads than the one that read it, so
/// under load a second's worth of freed pages sits in RSS. Measured (benches/peers.sh,
/// tail → Loki peak RSS; OTLP pass-through spans per CPU-second): 1000 ms 47-54 MiB,
/// 558-566k; 100 ms 44-50 MiB, 620-675k; 10 ms 38-41 MiB but 412-486k (purging on
/// the hot threads). 100 ms, unless MIMALLOC_PURGE_DELAY says otherwise.
fn return_freed_memory_soon() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set has no preconditions; options may be set at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) };
    }
}
