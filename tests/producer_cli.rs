mod common;

#[test]
fn placeholder_compiles() {
    let _ = common::unique_topic("x");
}
