//! CPU time of this process, of one of its threads, or of another process on this host: what
//! the benchmarks divide by their work to give figures that a shared, noisy machine moves much
//! less than it moves wall-clock rates.

use std::time::Duration;

fn rusage(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given. On failure the
    // zeroed value is read.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (user + system) of the calling thread (Linux's RUSAGE_THREAD).
pub fn thread() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time (user + system) of this process, all its threads.
pub fn process() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time (user + system) of process `pid` on this host, when `/proc` shows it and its
/// command is `expected_command` (a server on another host may have a backend with the same
/// pid as some unrelated local process). `None` otherwise.
pub fn local_process(pid: i32, expected_command: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": the command may hold spaces and parentheses, the last ')'
    // closes it.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if stat.get(open + 1..close)? != expected_command {
        return None;
    }
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_from_proc_like_from_getrusage() {
        // Spins until this thread has had 300 ms of CPU, however busy the machine is (a wall
        // clock bound keeps a getrusage that reads nothing from spinning for ever).
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while thread() < Duration::from_millis(300) && spin.elapsed() < Duration::from_secs(60) {
            for _ in 0..10_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
        }
        std::hint::black_box(x);
        let pid = i32::try_from(std::process::id()).expect("a pid fits an i32");
        let comm = std::fs::read_to_string("/proc/self/comm").expect("Linux /proc");
        let from_proc = local_process(pid, comm.trim()).expect("this process is on this host");
        let from_rusage = process();
        assert!(from_rusage >= Duration::from_millis(250), "{from_rusage:?}");
        // /proc counts in clock ticks (10 ms), getrusage in microseconds.
        let gap = from_rusage.abs_diff(from_proc);
        assert!(
            gap < Duration::from_millis(100),
            "{from_proc:?} vs {from_rusage:?}"
        );
        assert!(thread() <= from_rusage);
        assert_eq!(local_process(pid, "not-this-command"), None);
    }
}
