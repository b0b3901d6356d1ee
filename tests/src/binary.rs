//! The real `openvle-moodle` binary as a child process: built once per test process, started
//! with its flags, killed with SIGKILL or stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the folder holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// Path of `target/debug/openvle-moodle`, built once (`cargo build -q -p openvle-moodle --bin
/// openvle-moodle`) by the first caller of this test process. Honours `CARGO` and
/// `CARGO_TARGET_DIR`.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(&cargo)
            .args([
                "build",
                "-q",
                "-p",
                "openvle-moodle",
                "--bin",
                "openvle-moodle",
            ])
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo} build: {e}"));
        assert!(status.success(), "building openvle-moodle failed: {status}");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        let bin = target
            .join("debug")
            .join(format!("openvle-moodle{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "no binary at {}", bin.display());
        bin
    })
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// One run of the binary, output appended to a log file.
pub struct Proc {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// `ulimit -n` of the process (None: the test's own).
    nofile: Option<u32>,
    /// How many times it was started.
    pub starts: u32,
}

impl Proc {
    /// Not started yet: `args` are the whole command line after the binary.
    pub fn new(args: Vec<String>, log: PathBuf) -> Proc {
        Proc {
            args,
            envs: vec![("OPENVLE_LOG".into(), "warn".into())],
            log,
            child: None,
            nofile: None,
            starts: 0,
        }
    }

    /// Runs the binary under `ulimit -n n` (systemd's default soft limit is 1024).
    pub fn nofile(mut self, n: u32) -> Proc {
        self.nofile = Some(n);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Proc {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the process (if not running).
    pub fn start(&mut self) {
        if self.is_running() {
            return;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = match self.nofile {
            None => Command::new(binary()),
            Some(n) => {
                // The shell sets the limit, then becomes the binary (same pid, for the signals).
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(binary());
                sh
            }
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn openvle-moodle"));
        self.starts += 1;
    }

    /// SIGKILL (what `Child::kill` sends on unix) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `deadline` for the exit (SIGKILL and panic past it).
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if started.elapsed() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "openvle-moodle did not stop within {deadline:?} of SIGTERM; log:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of the process's output.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Runs the binary once to completion with `args` (and this process's environment
    /// settings); returns its status, stdout and stderr.
    pub fn run_once(&self, args: &[String]) -> (ExitStatus, String, String) {
        let mut cmd = Command::new(binary());
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run openvle-moodle");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
