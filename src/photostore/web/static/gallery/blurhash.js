// A BlurHash decoder (https://blurha.sh, the algorithm of the reference TypeScript decoder): a photo's
// `placeholder` string becomes a few DCT components, painted on a small canvas that CSS stretches
// while the real thumbnail loads.

const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function decode83(text) {
  let value = 0;
  for (const char of text) {
    const digit = DIGITS.indexOf(char);
    if (digit < 0) throw new Error(`invalid blurhash character ${char}`);
    value = value * 83 + digit;
  }
  return value;
}

function srgbToLinear(value) {
  const v = value / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

function linearToSrgb(value) {
  const v = Math.max(0, Math.min(1, value));
  return v <= 0.0031308 ? Math.round(v * 12.92 * 255 + 0.5) : Math.round((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5);
}

function signPow(value, exponent) {
  return Math.sign(value) * Math.abs(value) ** exponent;
}

// The RGBA pixels (width * height * 4) of `hash`; throws on a malformed hash.
export function decodeBlurhash(hash, width, height, punch = 1) {
  if (!hash || hash.length < 6) throw new Error("blurhash too short");
  const sizeFlag = decode83(hash[0]);
  const numY = Math.floor(sizeFlag / 9) + 1;
  const numX = (sizeFlag % 9) + 1;
  if (hash.length !== 4 + 2 * numX * numY) throw new Error("blurhash length does not match its size");
  const maximum = (decode83(hash[1]) + 1) / 166;
  const colors = new Array(numX * numY);
  const dc = decode83(hash.substring(2, 6));
  colors[0] = [srgbToLinear(dc >> 16), srgbToLinear((dc >> 8) & 255), srgbToLinear(dc & 255)];
  for (let i = 1; i < colors.length; i += 1) {
    const ac = decode83(hash.substring(4 + i * 2, 6 + i * 2));
    const scale = maximum * punch;
    colors[i] = [
      signPow((Math.floor(ac / 361) - 9) / 9, 2) * scale,
      signPow(((Math.floor(ac / 19) % 19) - 9) / 9, 2) * scale,
      signPow(((ac % 19) - 9) / 9, 2) * scale,
    ];
  }
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let j = 0; j < numY; j += 1) {
        const cy = Math.cos((Math.PI * y * j) / height);
        for (let i = 0; i < numX; i += 1) {
          const basis = Math.cos((Math.PI * x * i) / width) * cy;
          const color = colors[i + j * numX];
          r += color[0] * basis;
          g += color[1] * basis;
          b += color[2] * basis;
        }
      }
      const at = 4 * (x + y * width);
      pixels[at] = linearToSrgb(r);
      pixels[at + 1] = linearToSrgb(g);
      pixels[at + 2] = linearToSrgb(b);
      pixels[at + 3] = 255;
    }
  }
  return pixels;
}

// Paint `hash` on `canvas` (its own width and height); false when there is nothing to paint.
export function paintBlurhash(canvas, hash) {
  if (!hash) return false;
  try {
    const pixels = decodeBlurhash(hash, canvas.width, canvas.height);
    canvas.getContext("2d").putImageData(new ImageData(pixels, canvas.width, canvas.height), 0, 0);
    return true;
  } catch (err) {
    console.warn("bad placeholder", hash, err);
    return false;
  }
}
