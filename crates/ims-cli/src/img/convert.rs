//! `ims img convert`: any readable image to any format IMS writes, after the safety inspection.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use anyhow::{bail, Context};
use ims_formats::convert::{
    can_write, convert_to_file, Qcow2Compression, VhdSubformat, VmdkSubformat, WriteOptions,
};
use ims_formats::{Format, ReadAt};
use indicatif::ProgressStyle;

use super::{limits, open_file, parse_size, ConvertArgs};

pub fn run(args: ConvertArgs) -> anyhow::Result<i32> {
    let dst_format = args.output_format;
    if !can_write(dst_format) {
        bail!("IMS cannot write {dst_format} images (it writes raw, qcow2, vmdk, vhd, vhdx, zvhd and zvhd2)");
    }
    let opts = write_options(dst_format, &args.options, args.compress, args.threads)?;

    let file = open_file(&args.src)?;
    if let Ok(dst_meta) = std::fs::metadata(&args.dst) {
        let src_meta = file.metadata()?;
        if dst_meta.dev() == src_meta.dev() && dst_meta.ino() == src_meta.ino() {
            bail!("the destination {} is the source file", args.dst.display());
        }
    }
    let src: Arc<dyn ReadAt> = file;
    let inspection = ims_formats::inspect(src.clone(), args.format, &limits())
        .with_context(|| format!("{}: refused", args.src.display()))?;
    let image = ims_formats::open(src, inspection.format, &limits()).with_context(|| {
        format!(
            "cannot open {} as {}",
            args.src.display(),
            inspection.format
        )
    })?;

    let show = args.progress || std::io::stderr().is_terminal();
    let bar = crate::progress::bytes_bar(Some(image.virtual_size()), show, "Converting");
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {percent:>3}% [{bar:30.cyan/blue}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let result = convert_to_file(&*image, dst_format, &args.dst, &opts, &|done| {
        bar.set_position(done)
    });
    match result {
        Ok(_) => {
            bar.finish();
            Ok(0)
        }
        Err(e) => {
            bar.abandon();
            Err(anyhow::Error::new(e)
                .context(format!("converting {} to {dst_format}", args.src.display())))
        }
    }
}

/// Builds the writer settings from `-o` options, `-c` and `-t`.
fn write_options(
    format: Format,
    options: &[String],
    compress: bool,
    threads: usize,
) -> anyhow::Result<WriteOptions> {
    let mut opts = WriteOptions {
        threads,
        ..WriteOptions::default()
    };
    let mut compression_type = Qcow2Compression::Deflate;
    let mut vmdk_subformat: Option<VmdkSubformat> = None;
    let fmt = format.as_str();
    for item in options
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("invalid option {item:?}: expected KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        match (format, key) {
            (Format::Qcow2, "compression_type") => {
                compression_type = match value.to_ascii_lowercase().as_str() {
                    "zlib" | "deflate" => Qcow2Compression::Deflate,
                    "zstd" => Qcow2Compression::Zstd,
                    _ => bail!("invalid compression_type {value:?}: expected zlib or zstd"),
                }
            }
            (Format::Qcow2, "cluster_size") => {
                let n = parse_size(value).map_err(anyhow::Error::msg)?;
                if !n.is_power_of_two() || !(4096..=(2 << 20)).contains(&n) {
                    bail!("invalid cluster_size {value:?}: a power of two from 4k to 2M");
                }
                opts.qcow2_cluster_size = n;
            }
            // qcow2 files IMS writes are version 3 (compat 1.1).
            (Format::Qcow2, "compat") if matches!(value, "1.1" | "v3") => {}
            (Format::Vmdk, "subformat") => {
                vmdk_subformat = Some(match value.to_ascii_lowercase().as_str() {
                    "streamoptimized" => VmdkSubformat::StreamOptimized,
                    "monolithicsparse" => VmdkSubformat::MonolithicSparse,
                    _ => bail!("invalid vmdk subformat {value:?}: expected streamOptimized or monolithicSparse"),
                })
            }
            (Format::Vhd, "subformat") => {
                opts.vhd_subformat = match value.to_ascii_lowercase().as_str() {
                    "dynamic" => VhdSubformat::Dynamic,
                    "fixed" => VhdSubformat::Fixed,
                    _ => bail!("invalid vhd subformat {value:?}: expected dynamic or fixed"),
                }
            }
            (Format::Vhdx, "block_size") => {
                let n = parse_size(value).map_err(anyhow::Error::msg)?;
                if !n.is_power_of_two() || !((1 << 20)..=(256 << 20)).contains(&n) {
                    bail!("invalid block_size {value:?}: a power of two from 1M to 256M");
                }
                opts.vhdx_block_size = Some(n);
            }
            (Format::Zvhd | Format::Zvhd2, "block_size") => {
                let n = parse_size(value).map_err(anyhow::Error::msg)?;
                if !n.is_power_of_two() || !(4096..=(64 << 20)).contains(&n) {
                    bail!("invalid block_size {value:?}: a power of two from 4k to 64M");
                }
                opts.zvhd.block_size = n;
            }
            (Format::Zvhd | Format::Zvhd2, "level") => {
                let n: i32 = value.parse().with_context(|| format!("invalid level {value:?}"))?;
                opts.zvhd.level = Some(n);
            }
            _ => bail!("unknown option {key:?} for the {fmt} format"),
        }
    }
    if compress {
        match format {
            Format::Qcow2 => opts.qcow2_compression = Some(compression_type),
            Format::Vmdk => {
                if vmdk_subformat == Some(VmdkSubformat::MonolithicSparse) {
                    bail!("-c (compression) needs subformat=streamOptimized for vmdk");
                }
                vmdk_subformat = Some(VmdkSubformat::StreamOptimized);
            }
            // Always compressed.
            Format::Zvhd | Format::Zvhd2 => {}
            _ => bail!("compression is not supported for the {fmt} format"),
        }
    }
    if let Some(s) = vmdk_subformat {
        opts.vmdk_subformat = s;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let w = write_options(
            Format::Qcow2,
            &o(&["compression_type=zstd,cluster_size=128k"]),
            true,
            2,
        )
        .unwrap();
        assert_eq!(w.qcow2_compression, Some(Qcow2Compression::Zstd));
        assert_eq!(w.qcow2_cluster_size, 128 << 10);
        assert_eq!(w.threads, 2);
        let w = write_options(Format::Qcow2, &o(&["compression_type=zstd"]), false, 0).unwrap();
        assert_eq!(w.qcow2_compression, None);
        let w = write_options(Format::Vmdk, &o(&["subformat=monolithicSparse"]), false, 0).unwrap();
        assert_eq!(w.vmdk_subformat, VmdkSubformat::MonolithicSparse);
        assert!(write_options(Format::Vmdk, &o(&["subformat=monolithicSparse"]), true, 0).is_err());
        let w = write_options(Format::Vhd, &o(&["subformat=fixed"]), false, 0).unwrap();
        assert_eq!(w.vhd_subformat, VhdSubformat::Fixed);
        let w = write_options(Format::Zvhd2, &o(&["block_size=4M"]), true, 0).unwrap();
        assert_eq!(w.zvhd.block_size, 4 << 20);
        assert!(write_options(Format::Raw, &[], true, 0).is_err());
        assert!(write_options(Format::Raw, &o(&["cluster_size=64k"]), false, 0).is_err());
        assert!(write_options(Format::Qcow2, &o(&["cluster_size=3000"]), false, 0).is_err());
        assert!(write_options(Format::Qcow2, &o(&["nonsense"]), false, 0).is_err());
    }
}
