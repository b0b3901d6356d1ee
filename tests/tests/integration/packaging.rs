//! Shipping: one version everywhere (`--version`, the OpenAPI document, `openvle_build_info`),
//! and the Debian package installed into this machine with dpkg, its binary's `demo` run, its
//! unit checked by `systemd-analyze verify`, and purged.
//!
//! The install test needs root, dpkg and cargo-deb (or a built package in `OPENVLE_DEB`). It
//! says loudly why when it cannot run, and passes; with `OPENVLE_REQUIRE_PACKAGING=1` (set by
//! `.ci/run`) it fails instead. It refuses to touch a machine where the package is already
//! installed (it would purge the operator's).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::binary::{binary, workspace_root};
use support::{Backend, TestApp};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGE: &str = "openvle-moodle";
const REQUIRE: &str = "OPENVLE_REQUIRE_PACKAGING";

#[tokio::test]
async fn version_openapi_and_build_info_agree() {
    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("openvle-moodle {VERSION}")
    );
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc: serde_json::Value = app
        .request(reqwest::Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["version"], VERSION, "docs/openapi.json");
    let metrics = app
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("openvle_build_info{{version=\"{VERSION}\"}} 1");
    assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    app.stop().await;
    // What the package says it is.
    let changelog = std::fs::read_to_string(workspace_root().join("CHANGELOG.md")).unwrap();
    let heading = format!("## {VERSION}");
    assert!(
        changelog.lines().any(|l| l == heading),
        "CHANGELOG.md has no section {heading}"
    );
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let spdx = manifest
        .lines()
        .find_map(|l| l.strip_prefix("license = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the workspace's license field");
    let license = std::fs::read_to_string(workspace_root().join("LICENSE")).unwrap();
    assert!(
        license.starts_with(&format!("{spdx} License")),
        "LICENSE is not the {spdx} license of Cargo.toml"
    );
}

fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Why the install test cannot run here, if it cannot: panics when it is required.
fn cannot_run(why: &str) {
    assert!(
        !required(),
        "{REQUIRE} is set but the install test cannot run: {why}"
    );
    eprintln!(
        "SKIPPED: the Debian package install test did not run: {why} \
         (set {REQUIRE}=1 to make this a failure)"
    );
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])
        .stdout
        .starts_with(b"install ok installed")
}

/// The package: `OPENVLE_DEB`, or built now from the debug binary the tests use
/// (`PROFILE=dev packaging/build-deb.sh --fast`). None when cargo-deb is missing.
fn package() -> Option<PathBuf> {
    if let Some(deb) = std::env::var_os("OPENVLE_DEB").filter(|d| !d.is_empty()) {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "OPENVLE_DEB={} is no file", deb.display());
        return Some(deb);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let probe = Command::new(&cargo).args(["deb", "--version"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        cannot_run(
            "cargo-deb is not installed (`cargo install cargo-deb --locked --version 2.12.1`)",
        );
        return None;
    }
    let bin = binary(); // built once for the whole test process
    let root = workspace_root();
    let out = Command::new(root.join("packaging/build-deb.sh"))
        .arg("--fast")
        .env("PROFILE", "dev")
        .current_dir(&root)
        .output()
        .expect("run packaging/build-deb.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "build-deb.sh: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .map(|l| root.join(l.trim()))
        .unwrap_or_else(|| panic!("build-deb.sh named no .deb:\n{stdout}"));
    let debian = bin
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("debian"));
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    assert_eq!(
        deb.parent().and_then(real),
        debian.as_deref().and_then(real),
        "the package is not beside the build"
    );
    Some(deb)
}

/// Purges the package when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let out = run("dpkg", &["--purge", PACKAGE]);
        if !out.status.success() {
            eprintln!(
                "dpkg --purge {PACKAGE}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

const UNIT: &str = "/lib/systemd/system/openvle-moodle.service";
const ENV_FILE: &str = "/etc/openvle-moodle/openvle-moodle.env";
const STATE: &str = "/var/lib/openvle-moodle";

#[test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
fn the_debian_package_installs_runs_and_purges() {
    if !has("dpkg") || !has("dpkg-query") {
        return cannot_run("no dpkg on this machine (not a Debian system)");
    }
    let uid = ok("id", &["-u"]);
    if uid.trim() != "0" {
        return cannot_run(&format!("dpkg -i needs root; this is uid {}", uid.trim()));
    }
    if installed() {
        return cannot_run("openvle-moodle is installed on this machine: not purging it");
    }
    let Some(deb) = package() else { return };
    let deb = deb.to_string_lossy().into_owned();
    let control = ok("dpkg-deb", &["-f", &deb, "Version"]);
    assert!(
        control.trim().starts_with(VERSION),
        "package version {control}"
    );

    let purge = Purge;
    ok("dpkg", &["-i", &deb]);
    assert!(installed());

    // What was installed, where operators look for it.
    let out = ok("/usr/bin/openvle-moodle", &["--version"]);
    assert_eq!(out.trim(), format!("openvle-moodle {VERSION}"));
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "ExecStart=/usr/bin/openvle-moodle serve",
        "User=openvle-moodle",
        "EnvironmentFile=/etc/openvle-moodle/openvle-moodle.env",
        "StateDirectory=openvle-moodle",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let stat = ok("stat", &["-c", "%a %U %G", ENV_FILE]);
    assert_eq!(stat.trim(), "640 root openvle-moodle", "{ENV_FILE}");
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE]);
    assert!(conffiles.contains(ENV_FILE), "not a conffile: {conffiles}");
    let env = std::fs::read_to_string(ENV_FILE).unwrap();
    assert!(env.contains("#MOODLE_TOKEN_FILE="), "{env}");
    let man = ok("gzip", &["-dc", "/usr/share/man/man1/openvle-moodle.1.gz"]);
    assert!(
        man.contains(".TH openvle-moodle 1") && man.contains("reconcile"),
        "{man}"
    );
    for (file, marker) in [
        (
            "/usr/share/bash-completion/completions/openvle-moodle",
            "complete -F",
        ),
        (
            "/usr/share/zsh/vendor-completions/_openvle-moodle",
            "#compdef openvle-moodle",
        ),
        (
            "/usr/share/fish/vendor_completions.d/openvle-moodle.fish",
            "complete -c openvle-moodle",
        ),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(marker), "{file}");
    }
    let user = ok("getent", &["passwd", "openvle-moodle"]);
    assert!(user.contains(":/var/lib/openvle-moodle:"), "{user}");
    let stat = ok("stat", &["-c", "%U %a", STATE]);
    assert_eq!(stat.trim(), "openvle-moodle 750", "{STATE}");

    // The installed binary's demo, from a directory of no importance, in a bare environment.
    let cwd = tempfile::tempdir().unwrap();
    let demo = Command::new("/usr/bin/openvle-moodle")
        .arg("demo")
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "demo: {}\n{text}\n{}",
        demo.status,
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(text.contains("Audit chain: intact"), "{text}");
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "demo wrote into its cwd"
    );

    // The service user owns the state directory: the unit's default database can be made there.
    let db = format!("sqlite://{STATE}/install-test.db");
    let out = run(
        "runuser",
        &[
            "-u",
            "openvle-moodle",
            "--",
            "/usr/bin/openvle-moodle",
            "--database-url",
            &db,
            "migrate",
        ],
    );
    assert!(out.status.success(), "migrate as openvle-moodle: {out:?}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{STATE}/install-test.db{suffix}"));
    }

    if has("systemd-analyze") {
        // No systemd as PID 1 is needed: verify loads the unit file alone.
        let out = run("systemd-analyze", &["verify", UNIT]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}\n{said}",
            out.status
        );
        assert!(
            !said.contains("openvle-moodle"),
            "systemd-analyze verify warns:\n{said}"
        );
    } else {
        eprintln!("systemd-analyze is not on this machine: the unit was not verified");
    }

    drop(purge);
    assert!(!installed(), "still installed after dpkg --purge");
    for gone in ["/usr/bin/openvle-moodle", UNIT, ENV_FILE, STATE] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg --purge");
    }
}
