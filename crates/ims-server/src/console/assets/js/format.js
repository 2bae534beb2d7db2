// Numbers, sizes, dates and image kinds as people read them.

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 → "1.5 KiB"; null → "—". */
export function bytes(n) {
  if (n === null || n === undefined || n === "") return "—";
  n = Number(n);
  if (!Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} ${n === 1 ? "byte" : "bytes"}`;
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  const digits = n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits).replace(/\.0+$/, "").replace(/(\.\d*?)0+$/, "$1")} ${UNITS[i]}`;
}

/** 1234567 → "1,234,567". */
export function count(n) {
  return Number(n).toLocaleString("en-US");
}

/** An exact byte count, for titles: "1,048,576 bytes". */
export function exactBytes(n) {
  return n === null || n === undefined ? "unknown" : `${count(n)} bytes`;
}

/** Bytes per second as a rate. */
export function rate(bytesPerSecond) {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "—";
  return `${bytes(Math.round(bytesPerSecond))}/s`;
}

/** Seconds as "1 h 2 min", "3 min 4 s", "5 s". */
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${seconds % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** An ISO 8601 time in the reader's locale, short. */
export function date(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** What kind of image this is, from the IMS properties (system disk unless told otherwise). */
export function kind(image) {
  if (image.__whole_image === "true") return "Whole server";
  if (image.virtual_env_type === "DataImage" || image.__image_location === "data") return "Data disk";
  if (image.disk_format === "iso") return "ISO";
  return "System disk";
}

export const VISIBILITY_LABELS = {
  public: "Public",
  private: "Private",
  shared: "Shared",
  community: "Community",
};

export const STATUS_LABELS = {
  queued: "Queued (no data)",
  saving: "Saving",
  uploading: "Uploading",
  importing: "Importing",
  active: "Active",
  deactivated: "Deactivated",
  killed: "Killed",
  deleted: "Deleted",
  pending_delete: "Pending delete",
};

export const DISK_FORMATS = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "zvhd", "zvhd2", "qcow", "qed", "ploop", "ami", "ari", "aki"];
export const CONTAINER_FORMATS = ["bare", "ovf", "ova", "docker", "compressed", "ami", "ari", "aki"];

/** A disk format guessed from a file name; null when the extension says nothing. */
export function guessDiskFormat(fileName) {
  const ext = (fileName.split(".").pop() || "").toLowerCase();
  const known = { img: "raw", raw: "raw", qcow2: "qcow2", qcow: "qcow", vmdk: "vmdk", vhd: "vhd", vhdx: "vhdx", vdi: "vdi", iso: "iso", zvhd: "zvhd", zvhd2: "zvhd2", qed: "qed" };
  return known[ext] || null;
}

/** A file name for downloading `image`. */
export function fileNameFor(image) {
  const base = (image.name || image.id).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "") || image.id;
  const ext = image.disk_format && !base.toLowerCase().endsWith(`.${image.disk_format}`) ? `.${image.disk_format}` : "";
  return base + ext;
}
