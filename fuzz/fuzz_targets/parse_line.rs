//! Fuzzes the parse entry point: raw bytes as one input line, through detection (and, chosen
//! by the first byte, a forced format), extraction and the `parse` command's rendering.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use threatsift::describe_line;
use threatsift::FormatRegistry;

fn registry() -> &'static (FormatRegistry, Vec<&'static str>) {
    static REGISTRY: OnceLock<(FormatRegistry, Vec<&'static str>)> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = FormatRegistry::builtin(Default::default());
        let names = registry.names().collect();
        (registry, names)
    })
}

fuzz_target!(|data: &[u8]| {
    let (registry, names) = registry();
    let Some((&selector, line)) = data.split_first() else {
        return;
    };
    let _ = describe_line(registry, None, line, 1);
    let forced = names[usize::from(selector) % names.len()];
    let _ = describe_line(registry, Some(forced), line, 1);
});
