//! The shipped packages, built here the way a release builds them: the Debian package
//! (cargo-deb, the `[package.metadata.deb]` of Cargo.toml) checked with `dpkg-deb` and
//! installed into a scratch root by dpkg itself, maintainer scripts included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{find_program, repo_path};

/// Runs `command`, panicking with its output unless it succeeds; its stdout.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{command:?} failed:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    text
}

/// The .deb of this build (the test binary, packaged as a release one is: cargo-deb
/// maps `target/release/` in the assets to the profile's directory).
fn build_deb(out: &Path) -> PathBuf {
    let Some(_) = find_program("cargo-deb") else {
        panic!("cargo-deb is missing: `cargo install cargo-deb --locked` (scripts/test does)");
    };
    run(Command::new("cargo")
        .current_dir(repo_path(""))
        .args(["deb", "--profile", "dev", "--no-build", "--no-strip", "--fast", "--quiet", "--output"])
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", out.display());
    debs[0].clone()
}

/// An empty root dpkg can install into: its database and the account files the
/// postinst adds the user to.
fn scratch_root(root: &Path) {
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "etc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in ["var/lib/dpkg/status", "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"] {
        std::fs::write(root.join(file), "").unwrap();
    }
}

/// dpkg on the scratch root, running the maintainer scripts outside a chroot with
/// DPKG_ROOT set (the root has no shell of its own). libc6 is the host's, not the
/// root's, hence --force-depends.
fn dpkg(root: &Path, args: &[&str]) -> String {
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends", "--log=/dev/null"])
        .args(args);
    run(&mut command)
}

fn ocelot_account(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("ocelot:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_debian_package_holds_the_agent_and_installs_into_a_root() {
    let Some(_) = find_program("dpkg-deb") else { panic!("dpkg-deb is missing (Debian's dpkg)") };
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "installing the package into a scratch root runs its postinst, which sets owners: run as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());

    // The control part: name, the shared-library dependency, the conffiles, the scripts.
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: ocelot"), "{info}");
    assert!(info.contains("Depends: libc6"), "dependencies worked out from the binary: {info}");
    for script in ["postinst", "postrm", "prerm"] {
        assert!(info.contains(script), "{script} in {info}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles"));
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(conffiles, ["/etc/default/ocelot", "/etc/ocelot/config.yaml"]);

    // The data part: each file where the unit and the docs say, with its mode.
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/ocelot"),
        ("-rw-r--r--", "./usr/lib/systemd/system/ocelot.service"),
        ("-rw-r--r--", "./etc/ocelot/config.yaml"),
        ("-rw-------", "./etc/default/ocelot"),
    ] {
        assert!(
            contents.lines().any(|line| line.starts_with(mode) && line.ends_with(path)),
            "{path} with mode {mode} in:\n{contents}"
        );
    }

    // Installed by dpkg into a scratch root: the files as in the repository, the user
    // made, the state directory its own.
    let root = dir.path().join("root");
    scratch_root(&root);
    dpkg(&root, &["--install", deb.to_str().unwrap()]);
    let shipped = |path: &str| std::fs::read(root.join(path)).unwrap();
    assert_eq!(shipped("etc/ocelot/config.yaml"), std::fs::read(repo_path("config/examples/host-agent.yaml")).unwrap());
    assert_eq!(
        shipped("usr/lib/systemd/system/ocelot.service"),
        std::fs::read(repo_path("systemd/ocelot.service")).unwrap()
    );
    assert_eq!(shipped("etc/default/ocelot"), std::fs::read(repo_path("systemd/ocelot.default")).unwrap());
    let account = ocelot_account(&root);
    assert_eq!(account.len(), 1, "{account:?}");
    let fields: Vec<&str> = account[0].split(':').collect();
    assert_eq!(fields[5..], ["/var/lib/ocelot", "/usr/sbin/nologin"], "{account:?}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {account:?}");
    let state = std::fs::metadata(root.join("var/lib/ocelot")).unwrap();
    assert_eq!((state.uid(), state.mode() & 0o777), (uid, 0o700));

    // The shipped binary accepts the shipped config.
    let binary = root.join("usr/bin/ocelot");
    let config = root.join("etc/ocelot/config.yaml");
    let validated = run(Command::new(&binary).arg("validate").arg("--config").arg(&config));
    assert!(validated.contains("valid"), "{validated}");

    // Installed again (an upgrade's path): a local edit of the conffile is kept and the
    // user is not added twice.
    let edited = format!("{}# edited here\n", String::from_utf8(shipped("etc/ocelot/config.yaml")).unwrap());
    std::fs::write(&config, &edited).unwrap();
    dpkg(&root, &["--force-confold", "--install", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(ocelot_account(&root).len(), 1);

    // Purged: the program, its config and its state go; the user stays (Debian's
    // policy for system users).
    dpkg(&root, &["--purge", "ocelot"]);
    for gone in ["usr/bin/ocelot", "etc/ocelot/config.yaml", "etc/default/ocelot", "var/lib/ocelot"] {
        assert!(!root.join(gone).exists(), "{gone} is left after purge");
    }
    assert_eq!(ocelot_account(&root).len(), 1);
}
