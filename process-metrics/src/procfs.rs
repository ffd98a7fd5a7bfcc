//! Parsing what Linux reports about a process under `/proc`. Pure
//! functions over the files' text, so the tests can feed them fixtures;
//! [`read`] reads the real files.

use std::time::Duration;

/// One reading of the process, in the units Prometheus expects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub(crate) cpu: Duration,
    pub(crate) resident_bytes: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) threads: u64,
    /// Clock ticks after boot at which the process started.
    pub(crate) start_ticks: u64,
}

/// What `/proc/self/stat` holds that we use, still in kernel units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) utime_ticks: u64,
    pub(crate) stime_ticks: u64,
    pub(crate) threads: u64,
    pub(crate) start_ticks: u64,
    pub(crate) vsize_bytes: u64,
    pub(crate) rss_pages: u64,
}

/// Parses `/proc/<pid>/stat` (proc(5)). The command name, field 2, is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here, so field n is index n - 3.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The soft "Max open files" limit from `/proc/<pid>/limits`; `None` when
/// it is `unlimited` or missing.
pub(crate) fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` from `/proc/stat`: boot time in seconds since the Unix epoch.
pub(crate) fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The kernel's clock tick (`USER_HZ`) and page size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Units {
    pub(crate) ticks_per_second: u64,
    pub(crate) page_bytes: u64,
}

impl Units {
    pub(crate) fn of_this_system() -> Units {
        // SAFETY: `sysconf` reads a system constant; it takes an integer,
        // touches no memory of ours and is thread-safe.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Units {
            // `USER_HZ` is 100 on every Linux ABI; the fallbacks only matter
            // if `sysconf` fails.
            ticks_per_second: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
            page_bytes: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        }
    }

    pub(crate) fn reading(self, stat: Stat) -> Reading {
        let ticks = stat.utime_ticks.saturating_add(stat.stime_ticks);
        Reading {
            cpu: Duration::from_secs(ticks / self.ticks_per_second)
                + Duration::from_nanos(
                    (ticks % self.ticks_per_second) * 1_000_000_000 / self.ticks_per_second,
                ),
            resident_bytes: stat.rss_pages.saturating_mul(self.page_bytes),
            virtual_bytes: stat.vsize_bytes,
            threads: stat.threads,
            start_ticks: stat.start_ticks,
        }
    }
}

/// Reads `/proc/self/stat`.
pub(crate) fn read(units: Units) -> Option<Reading> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&text).map(|stat| units.reading(stat))
}

/// Counts `/proc/self/fd` entries (minus the one `read_dir` itself opens).
pub(crate) fn open_fds() -> Option<u64> {
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(count.saturating_sub(1))
}

/// Reads the soft open-files limit.
pub(crate) fn max_fds() -> Option<u64> {
    parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Reads the boot time.
pub(crate) fn boot_time() -> Option<u64> {
    parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a `)`, as a hostile process may
        // choose; the numbers are fields 3 onwards.
        let text = "4242 (we ird) 1 2) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0\n";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(
            stat,
            Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                threads: 9,
                start_ticks: 123456,
                vsize_bytes: 104857600,
                rss_pages: 2560,
            }
        );
        let reading = Units {
            ticks_per_second: 100,
            page_bytes: 4096,
        }
        .reading(stat);
        assert_eq!(reading.cpu, Duration::from_millis(3250));
        assert_eq!(reading.resident_bytes, 2560 * 4096);
    }

    #[test]
    fn truncated_or_garbled_files_give_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
        assert_eq!(
            parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 x 11 12 13 14 15 16 17 18 19 20 21"),
            None
        );
        assert_eq!(
            parse_max_open_files("Max open files  unlimited  unlimited  files"),
            None
        );
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn limits_and_boot_time_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_boot_time("cpu  1 2\nbtime 1796135944\nprocesses 9\n"),
            Some(1796135944)
        );
    }

    #[test]
    fn this_process_reads_plausibly() {
        let units = Units::of_this_system();
        let reading = read(units).expect("/proc/self/stat");
        assert!(reading.threads >= 1);
        assert!(reading.resident_bytes > 0 && reading.virtual_bytes >= reading.resident_bytes);
        assert!(
            open_fds().expect("/proc/self/fd") >= 3,
            "stdin, stdout, stderr"
        );
        assert!(boot_time().expect("btime") > 1_000_000_000);
    }
}
