use std::time::Instant;
use bytes::Bytes;
use md5::Digest;
use rand::{rngs::StdRng, Rng, SeedableRng};
const MIB: usize = 1024*1024;
include!("/tmp/gen.rs");
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}
fn t(label: &str, n: usize, f: impl FnOnce()) {
    let c = cpu(); let w = Instant::now(); f();
    let (c, w) = (cpu() - c, w.elapsed().as_secs_f64());
    println!("{label:12} cpu {:7.0} MB/s  wall {:7.0} MB/s  ({:.2} ns/B)", n as f64 / c / 1e6, n as f64 / w / 1e6, c * 1e9 / n as f64);
}
fn main() {
    let n = 128 * MIB;
    let data = generate(n);
    let mut sink = 0usize;
    t("gear only", n, || { let mut k = 0; for c in fastcdc::v2020::FastCDC::new(&data, 256*1024, MIB as u32, 4*MIB as u32) { k += c.length; } sink += k; });
    t("rope cdc", n, || { let mut c = ims_store::cdc::Chunker::new(); let mut k = 0; let mut e = |b: Vec<Bytes>| { k += b.len(); true }; for i in 0..n/65536 { c.push(data.slice(i*65536..(i+1)*65536), &mut e); } c.finish(&mut e); sink += k; });
    let chunks: Vec<Bytes> = (0..n/MIB).map(|i| data.slice(i*MIB..(i+1)*MIB)).collect();
    let segd: Vec<Vec<Bytes>> = chunks.iter().map(|c| (0..16).map(|j| c.slice(j*65536..(j+1)*65536)).collect()).collect();
    t("blake3", n, || { for c in &chunks { sink += ims_store::ChunkId::of(c).0[0] as usize; } });
    t("blake3 seg", n, || { for c in &segd { sink += ims_store::chunk::id_of_segments(c).0[0] as usize; } });
    t("zstd1 1shot", n, || { for c in &chunks { sink += zstd::bulk::compress(c, 1).unwrap().len(); } });
    t("zstd1 enc", n, || { for c in &chunks { sink += ims_store::chunk::encode(std::slice::from_ref(c)).content_length(); } });
    t("zstd1 seg", n, || { for c in &segd { sink += ims_store::chunk::encode(c).content_length(); } });
    t("md5", n, || { let mut h = md5::Md5::new(); h.update(&data); sink += h.finalize()[0] as usize; });
    t("sha512", n, || { let mut h = sha2::Sha512::new(); h.update(&data); sink += h.finalize()[0] as usize; });
    println!("{sink}");
}
