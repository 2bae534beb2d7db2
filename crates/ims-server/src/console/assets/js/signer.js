// SDK-HMAC-SHA256 request signatures (access key pairs), computed in the browser exactly as the
// server verifies them (the Huawei Cloud SDK signer):
//
//   canonical request = METHOD \n canonical URI \n canonical query \n canonical headers \n
//                       signed headers \n payload hash
//   string to sign    = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(sha256(canonical request))
//   signature         = hex(hmac_sha256(SK, string to sign))
//
// Percent-decoding is byte-wise and lossy (bad UTF-8 becomes U+FFFD), encoding keeps only
// A-Z a-z 0-9 - . _ ~, query pairs sort by their UTF-8 bytes: the same rules as the server's.
// WebCrypto (crypto.subtle) does the hashing; browsers offer it only on HTTPS or on the loopback.

export const ALGORITHM = "SDK-HMAC-SHA256";
export const EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

const utf8 = new TextEncoder();

/** Whether this page can sign (WebCrypto needs a secure context: HTTPS, or http://127.0.0.1). */
export function canSign() {
  return Boolean(globalThis.crypto && crypto.subtle);
}

const isHex = (b) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** `%XX` sequences to bytes, then UTF-8 with replacement characters (as Rust's decode_utf8_lossy). */
export function percentDecode(s) {
  const raw = utf8.encode(s);
  const out = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x25 && i + 2 < raw.length && isHex(raw[i + 1]) && isHex(raw[i + 2])) {
      out.push(parseInt(String.fromCharCode(raw[i + 1], raw[i + 2]), 16));
      i += 2;
    } else {
      out.push(raw[i]);
    }
  }
  return new TextDecoder().decode(new Uint8Array(out));
}

/** Everything but A-Z a-z 0-9 - . _ ~ percent-encoded (upper-case hex). */
export function encode(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The canonical URI of a raw (still encoded) path. */
export function canonicalUri(rawPath) {
  let uri = percentDecode(rawPath).split("/").map(encode).join("/");
  if (!uri.endsWith("/")) uri += "/";
  return uri;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The canonical query of a raw (still encoded) query string, without its `?`. */
export function canonicalQuery(rawQuery) {
  const pairs = rawQuery
    .split("&")
    .filter((p) => p !== "")
    .map((p) => {
      const at = p.indexOf("=");
      const [k, v] = at < 0 ? [p, ""] : [p.slice(0, at), p.slice(at + 1)];
      const key = percentDecode(k);
      const value = percentDecode(v);
      return { key, value, kb: utf8.encode(key), vb: utf8.encode(value) };
    });
  pairs.sort((a, b) => compareBytes(a.kb, b.kb) || compareBytes(a.vb, b.vb));
  return pairs.map((p) => `${encode(p.key)}=${encode(p.value)}`).join("&");
}

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** Hex SHA-256 of a string (UTF-8) or bytes. */
export async function sha256Hex(data) {
  return hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? utf8.encode(data) : data));
}

async function hmacHex(secret, text) {
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(await crypto.subtle.sign("HMAC", key, utf8.encode(text)));
}

/** `X-Sdk-Date` for an instant: 20240102T030405Z. */
export function sdkDate(date = new Date()) {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/**
 * The canonical request. `headers` maps lower-case names to values; every one of them is signed,
 * in sorted order.
 */
export function canonicalRequest(method, rawPath, rawQuery, headers, payloadHash) {
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join("");
  return [method.toUpperCase(), canonicalUri(rawPath), canonicalQuery(rawQuery), canonicalHeaders, names.join(";"), payloadHash].join("\n");
}

/**
 * The headers that sign one request: `X-Sdk-Date`, `Authorization`, and those it names.
 * `url` is what the browser sends (absolute or relative to this page); `body` a string, or
 * undefined; `unsignedPayload` for streamed bodies (file uploads) of `size` bytes, which are sent
 * with `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`. `headers` are the other headers the request carries
 * that should be signed (lower-case names), e.g. content-type and x-project-id. `host` is the Host
 * header the browser sends for `url`.
 */
export async function signRequest({ access, secret, method, url, body, unsignedPayload = false, size, headers = {}, date = new Date() }) {
  const u = new URL(url, location.href);
  const signed = { ...headers, host: u.host, "x-sdk-date": sdkDate(date) };
  let payloadHash;
  if (unsignedPayload) {
    signed["x-sdk-content-sha256"] = UNSIGNED_PAYLOAD;
    // The server hashes an empty streamed body as the empty string.
    payloadHash = size === 0 ? EMPTY_HASH : UNSIGNED_PAYLOAD;
  } else {
    payloadHash = body === undefined || body === null || body === "" ? EMPTY_HASH : await sha256Hex(body);
  }
  const canonical = canonicalRequest(method, u.pathname, u.search.replace(/^\?/, ""), signed, payloadHash);
  const toSign = `${ALGORITHM}\n${signed["x-sdk-date"]}\n${await sha256Hex(canonical)}`;
  const signature = await hmacHex(secret, toSign);
  const out = { "X-Sdk-Date": signed["x-sdk-date"], Authorization: `${ALGORITHM} Access=${access}, SignedHeaders=${Object.keys(signed).sort().join(";")}, Signature=${signature}` };
  if (unsignedPayload) out["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD;
  return out;
}
