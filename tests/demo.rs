//! `ocpoll demo --duration 5s`: the sample API, the receiver and the in-process daemon work
//! together, and the receiver verified what it printed.

mod util;

use util::Dir;

#[test]
fn the_demo_receives_and_verifies_events() {
    let dir = Dir::new();
    let run = dir.run(["demo", "--duration", "5s"]);
    run.assert_code(0);
    let stdout = run.stdout();
    let events: Vec<&str> = stdout
        .lines()
        .filter(|line| line.ends_with("signatures verified"))
        .collect();
    assert!(!events.is_empty(), "{}", run.show());
    for event in &events {
        assert!(
            event.starts_with("CREATED ") || event.starts_with("UPDATED "),
            "{event}"
        );
        assert!(event.contains(" contacts "), "{event}");
    }
    let totals = stdout
        .lines()
        .rfind(|line| line.starts_with("totals: "))
        .expect("a totals line");
    assert!(totals.contains(" 0 rejected"), "{totals}");
    assert!(
        totals.starts_with(&format!("totals: {} events", events.len())),
        "{totals}"
    );
    assert!(!stdout.contains("REJECTED"), "{}", run.show());
}
