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

/// buildah on a storage of the test's own (vfs, chroot isolation: no daemon, no
/// namespaces beyond a chroot), so nothing is shared with the host's images.
struct Buildah {
    program: PathBuf,
    root: PathBuf,
}

impl Buildah {
    fn new(dir: &Path) -> Buildah {
        let Some(program) = find_program("buildah") else {
            panic!("buildah is missing: install Debian's buildah (scripts/test does)");
        };
        Buildah { program, root: dir.to_path_buf() }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("--storage-driver=vfs")
            .arg(format!("--root={}", self.root.join("storage").display()))
            .arg(format!("--runroot={}", self.root.join("run").display()));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        run(self.command().args(args)).trim().to_string()
    }
}

/// A local stand-in for distroless cc: glibc and the libraries the binary links, CA
/// certificates, and distroless' `nonroot` user (65532). No registry is reachable here.
fn glibc_base(buildah: &Buildah, name: &str) {
    let container = buildah.run(&["from", "scratch"]);
    let mount = PathBuf::from(buildah.run(&["mount", &container]));
    let ldd = run(Command::new("ldd").arg(common::BIN));
    let libraries = ldd.lines().filter_map(|line| {
        let path = line.split_whitespace().find(|word| word.starts_with('/'))?;
        Some(PathBuf::from(path))
    });
    for library in libraries {
        let target = mount.join(library.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&library, &target).unwrap();
    }
    std::fs::create_dir_all(mount.join("etc/ssl/certs")).unwrap();
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", mount.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    std::fs::write(
        mount.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(mount.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    buildah.run(&["umount", &container]);
    buildah.run(&["commit", "--quiet", &container, name]);
    buildah.run(&["rm", &container]);
}

#[test]
fn the_container_image_runs_the_agent_as_a_user_of_its_own() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "buildah with vfs storage and chroot isolation runs as root");
    let dir = tempfile::tempdir().unwrap();
    let buildah = Buildah::new(dir.path());
    glibc_base(&buildah, "localhost/ocelot-test-base");

    // The README's command with this build's binary and the local base; the stage that
    // compiles in a Rust image is skipped.
    let binary = Path::new(common::BIN).strip_prefix(repo_path("")).unwrap().to_str().unwrap().to_string();
    let mut bud = buildah.command();
    bud.current_dir(repo_path("")).args([
        "bud",
        "--isolation=chroot",
        "--quiet",
        "--build-arg=BINARY_STAGE=prebuilt",
        "--build-arg=RUNTIME_IMAGE=localhost/ocelot-test-base",
        &format!("--build-arg=BINARY={binary}"),
        "--tag=localhost/ocelot:test",
        ".",
    ]);
    run(&mut bud);

    // What Kubernetes and Docker read from the image.
    let config = buildah.run(&[
        "inspect",
        "--format",
        "{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.Cmd}}|{{.OCIv1.Config.Volumes}}|{{.OCIv1.Config.ExposedPorts}}",
        "localhost/ocelot:test",
    ]);
    let fields: Vec<&str> = config.split('|').collect();
    assert_eq!(fields[0], "65532:65532", "{config}");
    assert_eq!(fields[1], "[/usr/bin/ocelot]", "{config}");
    assert_eq!(fields[2], "[--config /etc/ocelot/config.yaml --storage-dir /var/lib/ocelot]", "{config}");
    assert_eq!(fields[3], "map[/var/lib/ocelot:{}]", "{config}");
    for port in ["4317/tcp", "4318/tcp", "8888/tcp", "13133/tcp"] {
        assert!(fields[4].contains(port), "{port} exposed: {config}");
    }

    // Run in it: the version, the shipped config and the embedded default validate, and
    // the state directory belongs to the image's user.
    let container = buildah.run(&["from", "--quiet", "localhost/ocelot:test"]);
    let inside = |args: &[&str]| {
        let mut command = buildah.command();
        command.args(["run", "--isolation=chroot", &container, "--"]).args(args);
        run(&mut command)
    };
    assert_eq!(inside(&["/usr/bin/ocelot", "--version"]).trim(), format!("ocelot {}", env!("CARGO_PKG_VERSION")));
    assert!(inside(&["/usr/bin/ocelot", "validate", "--config", "/etc/ocelot/config.yaml"]).contains("valid"));
    let default = inside(&["/usr/bin/ocelot", "validate"]);
    assert!(default.contains("embedded default"), "{default}");
    let storage = inside(&["/usr/bin/ocelot", "validate", "--storage", "/var/lib/ocelot"]);
    assert!(storage.contains("storage is sound"), "{storage}");
    let mount = PathBuf::from(buildah.run(&["mount", &container]));
    let state = std::fs::metadata(mount.join("var/lib/ocelot")).unwrap();
    assert_eq!((state.uid(), state.gid()), (65532, 65532));
    assert_eq!(
        std::fs::read(mount.join("etc/ocelot/config.yaml")).unwrap(),
        std::fs::read(repo_path("packaging/container/config.yaml")).unwrap()
    );
    buildah.run(&["umount", &container]);
    buildah.run(&["rm", &container]);
}
