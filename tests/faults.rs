//! Faults and abuse that only a whole process shows (issue 15): the real
//! binary under signals, hostile files, a low descriptor limit, and floods,
//! each bounded in count and time.

use std::time::Duration;

use crate::fakeup::Fakeup;
use crate::proc::{Proc, Start, config};

const RULES: &str = "lists:\n  kaspersky: {builtin: kaspersky}\nrules:\n  - {name: cutoff, lists: [kaspersky], action: block}\n";

/// Issue 15, point 3: warnings were logged only at start-up, so a reload
/// to a file that loads but looks wrong was silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_logs_the_new_files_warnings() {
    let up = Fakeup::start().await;
    let p = Proc::start(&config(up.addr(), RULES), Start::default());
    assert_eq!(p.count_log("config: "), 0, "{}", p.log());
    let with_warning = RULES.replace(
        "lists:\n",
        "lists:\n  unused: {builtin: kaspersky-networks}\n",
    );
    std::fs::write(&p.config, config(up.addr(), &with_warning)).expect("write");
    p.signal("HUP");
    assert!(
        p.wait_log("reloaded", Duration::from_secs(20)).is_some(),
        "{}",
        p.log()
    );
    let line = p.wait_log(
        "list `unused` is not used by any rule",
        Duration::from_secs(5),
    );
    assert!(line.is_some_and(|l| l.contains("WARN")), "{}", p.log());
}
