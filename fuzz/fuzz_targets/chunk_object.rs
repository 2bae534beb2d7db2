#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ims_fuzz::protocols::chunk_object(data));
