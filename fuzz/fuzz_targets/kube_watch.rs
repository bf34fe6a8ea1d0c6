//! A line of a Kubernetes watch stream: refused, or read as a pod that goes into the
//! k8sattributes pod table and tags a resource, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ocelot::processors::k8sattributes::fuzz_watch_line(data);
});
