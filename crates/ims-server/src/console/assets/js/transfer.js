// Moving image data between the browser and IMS without holding it in memory where that can be
// avoided.
//
// Upload (image data, bucket objects): XMLHttpRequest with the File itself as the body. The browser
// streams the file from disk and reports upload progress; the page never reads the file (with an
// access key the body is sent as UNSIGNED-PAYLOAD, so it is not hashed either).
//
// Download: the file endpoint needs the credential's headers (X-Auth-Token, or a signature), so a
// plain link cannot be used (and a credential must never be put in a URL). Where the browser has the File System Access API
// (showSaveFilePicker: Chromium-based browsers), the response body is piped straight into the file
// the user picked, chunk by chunk, so any size works. Elsewhere the body is collected into a Blob
// (held in memory or spilled to disk by the browser) and saved through an object URL; for large
// images the user is warned first.

import { ApiError, fetchImageFile, messageOf, uploadHeaders } from "./api.js";

/** Above this size the Blob fallback asks before downloading. */
export const BLOB_WARNING_BYTES = 512 * 1024 * 1024;

/** Keeps a moving window of (time, bytes) samples to tell the rate and the time left. */
export class RateMeter {
  constructor(windowMs = 3000) {
    this.windowMs = windowMs;
    this.samples = [];
    this.started = performance.now();
  }

  /** Records that `loaded` bytes are done now; returns {rate (bytes/s), eta (s or NaN)}. */
  update(loaded, total) {
    const now = performance.now();
    this.samples.push([now, loaded]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.windowMs) this.samples.shift();
    const [t0, b0] = this.samples[0];
    let rate = now > t0 ? ((loaded - b0) * 1000) / (now - t0) : NaN;
    if (!(rate > 0)) {
      const elapsed = now - this.started;
      rate = elapsed > 0 ? (loaded * 1000) / elapsed : NaN;
    }
    const eta = total && rate > 0 ? (total - loaded) / rate : NaN;
    return { rate, eta };
  }
}

/**
 * Uploads `file` as the data of image `imageId`. Returns {done, abort}: `done` resolves when the
 * server has stored and checked the data (204) and rejects with an ApiError otherwise.
 * `onProgress({loaded, total, rate, eta})` is called as bytes leave the browser; `onSent()` once
 * every byte has been sent (the server then verifies the image before answering).
 */
export function upload(imageId, file, callbacks = {}) {
  return uploadTo(`/v2/images/${encodeURIComponent(imageId)}/file`, file, { ...callbacks, extraHeaders: { "x-openstack-image-size": String(file.size) } });
}

/**
 * Streams `file` as the body of `PUT url` (an image's data, a bucket object). Returns {done, abort};
 * `done` resolves to the parsed JSON answer (null when there is none). See `upload`.
 */
export function uploadTo(url, file, { onProgress, onSent, extraHeaders = {} } = {}) {
  const xhr = new XMLHttpRequest();
  const meter = new RateMeter();
  let aborted = false;
  const done = new Promise((resolve, reject) => {
    start().catch(reject);
    async function start() {
      // Signed credentials hash with WebCrypto first: the request opens once the headers are known.
      const headers = await uploadHeaders("PUT", url, file.size);
      if (aborted) throw new DOMException("The upload was cancelled.", "AbortError");
      xhr.open("PUT", url);
      for (const [k, v] of Object.entries({ ...headers, ...extraHeaders })) xhr.setRequestHeader(k, v);
      xhr.upload.addEventListener("progress", (e) => {
        const total = e.lengthComputable ? e.total : file.size;
        const { rate, eta } = meter.update(e.loaded, total);
        if (onProgress) onProgress({ loaded: e.loaded, total, rate, eta });
      });
      xhr.upload.addEventListener("load", () => {
        if (onProgress) onProgress({ loaded: file.size, total: file.size, rate: meter.update(file.size, file.size).rate, eta: 0 });
        if (onSent) onSent();
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          let answer = null;
          try {
            answer = xhr.responseText ? JSON.parse(xhr.responseText) : null;
          } catch {
            /* no JSON answer */
          }
          resolve(answer);
          return;
        }
        let body = xhr.responseText;
        try {
          body = JSON.parse(body);
        } catch {
          /* not JSON */
        }
        reject(new ApiError(xhr.status, messageOf(body, `${xhr.status} ${xhr.statusText}`), body));
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "The upload was interrupted: the server could not be reached.")));
      xhr.addEventListener("abort", () => reject(new DOMException("The upload was cancelled.", "AbortError")));
      xhr.send(file);
    }
  });
  return {
    done,
    abort: () => {
      aborted = true;
      xhr.abort();
    },
  };
}

/** Whether downloads can stream straight to disk in this browser. */
export function canStreamToDisk() {
  return typeof window.showSaveFilePicker === "function";
}

/**
 * Downloads the file of `image` as `fileName`. Must be called from a user's click (the save
 * picker needs it). `confirmLarge(size)` is asked before a large in-memory download and may
 * decline. `onProgress({loaded, total, rate, eta})` reports bytes received. Resolves to
 * {saved: true, method: "stream"|"blob"} or {saved: false} when the user cancelled.
 */
export async function download(image, fileName, { onProgress, confirmLarge, signal } = {}) {
  const total = image.size || 0;
  if (canStreamToDisk()) {
    let handle;
    try {
      // First, while the click still counts as the user's gesture.
      handle = await window.showSaveFilePicker({ suggestedName: fileName });
    } catch (e) {
      if (e && e.name === "AbortError") return { saved: false };
      handle = null; // the picker is there but refused (policy, headless): fall back below
    }
    if (handle) {
      const response = await fetchImageFile(image.id, signal);
      const writable = await handle.createWritable();
      try {
        await response.body.pipeThrough(counter(total, onProgress)).pipeTo(writable, { signal });
      } catch (e) {
        await writable.abort().catch(() => {});
        throw e;
      }
      return { saved: true, method: "stream" };
    }
  }
  if (total > BLOB_WARNING_BYTES && confirmLarge && !(await confirmLarge(total))) return { saved: false };
  const response = await fetchImageFile(image.id, signal);
  const chunks = [];
  const reader = response.body.pipeThrough(counter(total, onProgress)).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const blob = new Blob(chunks, { type: "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { saved: true, method: "blob" };
}

/** A pass-through stream that reports how many bytes went by. */
function counter(total, onProgress) {
  const meter = new RateMeter();
  let loaded = 0;
  return new TransformStream({
    transform(chunk, controller) {
      loaded += chunk.byteLength;
      if (onProgress) onProgress({ loaded, total, ...meter.update(loaded, total) });
      controller.enqueue(chunk);
    },
  });
}
