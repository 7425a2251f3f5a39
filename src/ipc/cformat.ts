/**
 * C printf's `%e` and `%f` for doubles, digit for digit as glibc prints them.
 *
 * BOINC writes every number on its channels and in init_data.xml with `%e` or `%f`
 * (client/app_control.cpp send_heartbeats, api/boinc_api.cpp update_app_progress,
 * lib/app_ipc.cpp write_init_data_file). JavaScript's toExponential/toFixed round exact ties away
 * from zero and print exponents without padding; glibc rounds the exact binary value to nearest,
 * ties to even, and pads the exponent to two digits. So the value is expanded exactly with BigInt
 * and rounded here.
 */

/** The exact decimal value of a finite positive double: digits / 10^scale. */
function exactDecimal(x: number): { digits: bigint; scale: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biasedExp = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp2: number;
  if (biasedExp === 0) {
    exp2 = -1074; // subnormal
  } else {
    mantissa |= 1n << 52n;
    exp2 = biasedExp - 1075;
  }
  if (exp2 >= 0) return { digits: mantissa << BigInt(exp2), scale: 0 };
  // m / 2^k = m * 5^k / 10^k
  return { digits: mantissa * 5n ** BigInt(-exp2), scale: -exp2 };
}

/** Divide by 10^drop, rounding to nearest with ties to even (the default FP rounding mode). */
function roundDrop(digits: bigint, drop: number): bigint {
  if (drop <= 0) return digits * 10n ** BigInt(-drop);
  const unit = 10n ** BigInt(drop);
  const q = digits / unit;
  const r = digits % unit;
  const twice = r * 2n;
  if (twice > unit || (twice === unit && q % 2n === 1n)) return q + 1n;
  return q;
}

function special(x: number): string | undefined {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return undefined;
}

/** `printf("%.<precision>e", x)`. */
export function formatE(x: number, precision = 6): string {
  const s = special(x);
  if (s !== undefined) return s;
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const ax = Math.abs(x);
  let mant: string;
  let exp10: number;
  if (ax === 0) {
    mant = '0'.repeat(precision + 1);
    exp10 = 0;
  } else {
    const { digits, scale } = exactDecimal(ax);
    const len = digits.toString().length;
    exp10 = len - 1 - scale;
    let rounded = roundDrop(digits, len - (precision + 1));
    if (rounded.toString().length > precision + 1) {
      // 9.9999995 -> 10.000000: one more power of ten
      rounded /= 10n;
      exp10 += 1;
    }
    mant = rounded.toString();
  }
  const body = precision > 0 ? `${mant[0]}.${mant.slice(1)}` : mant;
  const expSign = exp10 < 0 ? '-' : '+';
  return `${sign}${body}e${expSign}${String(Math.abs(exp10)).padStart(2, '0')}`;
}

/** `printf("%.<precision>f", x)`. */
export function formatF(x: number, precision = 6): string {
  const s = special(x);
  if (s !== undefined) return s;
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const ax = Math.abs(x);
  const { digits, scale } = ax === 0 ? { digits: 0n, scale: 0 } : exactDecimal(ax);
  const scaled = roundDrop(digits, scale - precision).toString().padStart(precision + 1, '0');
  if (precision === 0) return `${sign}${scaled}`;
  return `${sign}${scaled.slice(0, -precision)}.${scaled.slice(-precision)}`;
}
