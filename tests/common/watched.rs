//! Child processes watched while they run: stdout and stderr collected line by line, so a test
//! waits for a condition on what was printed (N deliveries, an expected line, a JSON event)
//! instead of sleeping, then stops the process (SIGTERM, SIGKILL) or lets it end by itself.
//! Shared by every integration test that drives a binary it does not simply run to completion.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sends `signal` (e.g. "STOP", "CONT", "KILL") to `pid` with kill(1). Returns whether it worked.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Peak resident set size (`VmHWM`) of a live process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What a watched process has printed so far.
#[derive(Default)]
struct Captured {
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// The JSON objects among `stdout[..parsed]`, parsed once each.
    events: Vec<serde_json::Value>,
    parsed: usize,
}

impl Captured {
    /// The JSON objects printed on stdout so far.
    fn events(&mut self) -> &[serde_json::Value] {
        let new = json_events(&self.stdout[self.parsed..]);
        self.events.extend(new);
        self.parsed = self.stdout.len();
        &self.events
    }
}

/// A child process whose stdout and stderr are collected line by line while it runs, so a test
/// can wait for "N messages delivered" before injecting a fault. Killed (SIGKILL) on drop.
pub struct Watched {
    name: String,
    child: Child,
    captured: Arc<Mutex<Captured>>,
    readers: Vec<JoinHandle<()>>,
    stdin: Option<std::process::ChildStdin>,
    status: Option<ExitStatus>,
    peak_kib: u64,
}

/// The end of a watched process.
#[derive(Debug)]
pub struct Finished {
    pub name: String,
    /// `None` when it had to be killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// Highest `VmHWM` seen while waiting, KiB (0 if never sampled).
    pub peak_kib: u64,
}

impl Finished {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Killed by a signal or by the deadline.
    pub fn describe(&self) -> String {
        format!(
            "{}: status {:?}\n--- stderr (last 40 lines) ---\n{}\n--- stdout (last 10 lines) ---\n{}",
            self.name,
            self.status,
            tail(&self.stderr, 40),
            tail(&self.stdout, 10)
        )
    }

    /// Stdout lines that are JSON objects (other lines are ignored).
    pub fn events(&self) -> Vec<serde_json::Value> {
        json_events(&self.stdout)
    }

    /// Asserts a clean exit, showing the output otherwise.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "{} did not exit 0\n{}",
            self.name,
            self.describe()
        );
        self
    }
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Stdout lines that parse as JSON objects.
pub fn json_events(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect()
}

impl Watched {
    /// Starts `bin args…` with stdin closed.
    pub fn spawn(name: &str, bin: &str, args: &[&str]) -> Self {
        Self::spawn_with(name, bin, args, false, &[])
    }

    /// Starts `bin args…`; with `stdin`, the test writes to it via [`Watched::write_line`].
    pub fn spawn_with(
        name: &str,
        bin: &str,
        args: &[&str],
        stdin: bool,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {bin}: {e}"));
        let captured = Arc::new(Mutex::new(Captured::default()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, Arc::clone(&captured), false));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, Arc::clone(&captured), true));
        }
        let stdin = child.stdin.take();
        Self {
            name: name.to_string(),
            child,
            captured,
            readers,
            stdin,
            status: None,
            peak_kib: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the child's stdin (panics if stdin was not piped or is closed).
    pub fn write_line(&mut self, line: &str) {
        let name = &self.name;
        let pipe = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{name}: stdin not piped"));
        writeln!(pipe, "{line}").unwrap_or_else(|e| panic!("{name}: writing stdin: {e}"));
    }

    /// Hands the child's stdin to the caller (e.g. to write from another thread).
    pub fn take_stdin(&mut self) -> std::process::ChildStdin {
        let name = &self.name;
        self.stdin
            .take()
            .unwrap_or_else(|| panic!("{name}: stdin not piped"))
    }

    /// Flushes and closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        if let Some(mut p) = self.stdin.take() {
            let _ = p.flush();
        }
    }

    /// Snapshot of stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.captured.lock().expect("captured").stdout.clone()
    }

    /// Snapshot of stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.captured.lock().expect("captured").stderr.clone()
    }

    /// Number of stdout lines so far that contain `needle`.
    pub fn count_stdout(&self, needle: &str) -> usize {
        let c = self.captured.lock().expect("captured");
        c.stdout.iter().filter(|l| l.contains(needle)).count()
    }

    /// Number of stderr lines so far that contain `needle`.
    pub fn count_stderr(&self, needle: &str) -> usize {
        let c = self.captured.lock().expect("captured");
        c.stderr.iter().filter(|l| l.contains(needle)).count()
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.status = Some(s);
                false
            }
            _ => true,
        }
    }

    /// Samples the peak RSS (while the process lives).
    pub fn sample_memory(&mut self) -> u64 {
        if let Some(k) = vm_hwm_kib(self.pid()) {
            self.peak_kib = self.peak_kib.max(k);
        }
        self.peak_kib
    }

    /// Waits until stdout has at least `n` lines containing `needle`, panicking (with the
    /// process's output) after `limit` or if the process exits first.
    pub fn wait_stdout(&mut self, needle: &str, n: usize, limit: Duration) {
        self.wait_output(&format!("{n} stdout lines with '{needle}'"), limit, |c| {
            c.stdout.iter().filter(|l| l.contains(needle)).count() >= n
        });
    }

    /// Waits until stderr has a line containing `needle` (panics after `limit` or if the
    /// process exits first).
    pub fn wait_stderr(&mut self, needle: &str, limit: Duration) {
        self.wait_output(&format!("a stderr line with '{needle}'"), limit, |c| {
            c.stderr.iter().any(|l| l.contains(needle))
        });
    }

    /// Waits until `cond` holds for the JSON objects printed on stdout so far (panics, naming
    /// `what`, after `limit` or if the process exits first).
    pub fn wait_events(
        &mut self,
        what: &str,
        limit: Duration,
        cond: impl Fn(&[serde_json::Value]) -> bool,
    ) {
        self.wait_output(what, limit, |c| cond(c.events()));
    }

    /// Polls `cond` on the output every 20 ms. Once the process has exited, waits for the
    /// readers to reach the end of its pipes before the last check.
    fn wait_output(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&mut Captured) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if cond(&mut self.captured.lock().expect("captured")) {
                return;
            }
            if !self.running() {
                while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if cond(&mut self.captured.lock().expect("captured")) {
                    return;
                }
                panic!(
                    "{} exited ({:?}) before {what}\n{}",
                    self.name,
                    self.status,
                    self.snapshot()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} after {limit:?}\n{}",
                self.name,
                self.snapshot()
            );
            self.sample_memory();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn snapshot(&self) -> String {
        let c = self.captured.lock().expect("captured");
        format!(
            "--- stderr (last 40 lines) ---\n{}\n--- stdout (last 10 lines) ---\n{}",
            tail(&c.stderr, 40),
            tail(&c.stdout, 10)
        )
    }

    /// SIGKILLs the process and collects what it printed.
    pub fn kill9(mut self) -> Finished {
        let _ = self.child.kill();
        self.finish_after_exit(None)
    }

    /// Sends SIGTERM and waits for it to exit (SIGKILL after `limit`). The signal is sent only
    /// once the process catches SIGTERM (its handler is installed: bit 15 of `SigCgt` in
    /// /proc/PID/status), so a fresh process is not killed by the default action mid-startup.
    pub fn terminate(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        while self.running() && !catches_sigterm(self.pid()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(self.pid(), "TERM");
        self.wait(limit)
    }

    /// Waits for the process to exit by itself, killing it after `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        self.close_stdin();
        let deadline = Instant::now() + limit;
        loop {
            if !self.running() {
                let status = self.status;
                return self.finish_after_exit(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return self.finish_after_exit(None);
            }
            self.sample_memory();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish_after_exit(&mut self, status: Option<ExitStatus>) -> Finished {
        self.close_stdin();
        let waited = self.child.wait().ok();
        let status = status.or(waited.filter(|s| s.code().is_some() || status.is_some()));
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let c = std::mem::take(&mut *self.captured.lock().expect("captured"));
        Finished {
            name: self.name.clone(),
            status,
            stdout: c.stdout,
            stderr: c.stderr,
            peak_kib: self.peak_kib,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn reader(
    pipe: impl Read + Send + 'static,
    captured: Arc<Mutex<Captured>>,
    is_err: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    let mut c = captured.lock().expect("captured");
                    if is_err {
                        c.stderr.push(line);
                    } else {
                        c.stdout.push(line);
                    }
                }
            }
        }
    })
}

/// True when process `pid` has a handler installed for SIGTERM (`SigCgt` bit 15).
fn catches_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}
