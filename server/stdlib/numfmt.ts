// C's printf "%.14g" (LUA_NUMBER_FMT), which io.write uses for floats.
// fengari's own formatting differs (1e+20 prints in full), and JS rounds
// ties away from zero where glibc rounds the exact binary value half to
// even, so the digits are computed exactly, with BigInt.

const PRECISION = 14;

/** The exact decimal digits of |n| (finite, not zero) and the power of ten of the first one. */
function exactDecimal(n: number): { digits: string; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(n));
  const bits = view.getBigUint64(0);
  const biasedExponent = Number(bits >> 52n);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biasedExponent === 0 ? fraction : fraction | (1n << 52n);
  const power = (biasedExponent === 0 ? 1 : biasedExponent) - 1075; // |n| = mantissa * 2^power
  // mantissa * 2^-k = mantissa * 5^k / 10^k
  const digits = power >= 0 ? (mantissa << BigInt(power)).toString() : (mantissa * 5n ** BigInt(-power)).toString();
  const scale = power >= 0 ? 0 : -power;
  const significant = digits.replace(/0+$/, '') || '0';
  return { digits: significant, exponent: digits.length - 1 - scale };
}

/** The first `count` digits, rounded half to even; the exponent grows on a carry. */
function roundToDigits(digits: string, exponent: number, count: number): { digits: string; exponent: number } {
  if (digits.length <= count) return { digits: digits.padEnd(count, '0'), exponent };
  let head = digits.slice(0, count);
  const first = digits[count];
  const beyondHalf = /[1-9]/.test(digits.slice(count + 1));
  const odd = Number(head[count - 1]) % 2 === 1;
  if (first > '5' || (first === '5' && (beyondHalf || odd))) {
    head = (BigInt(head) + 1n).toString();
    if (head.length > count) return { digits: head.slice(0, count), exponent: exponent + 1 };
  }
  return { digits: head, exponent };
}

function withoutTrailingZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  const sign = n < 0 || Object.is(n, -0) ? '-' : '';
  if (n === 0) return `${sign}0`;
  const exact = exactDecimal(n);
  const { digits, exponent } = roundToDigits(exact.digits, exact.exponent, PRECISION);
  if (exponent < -4 || exponent >= PRECISION) {
    const mantissa = withoutTrailingZeros(`${digits[0]}.${digits.slice(1)}`);
    const exponentSign = exponent < 0 ? '-' : '+';
    return `${sign}${mantissa}e${exponentSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  const fixed =
    exponent >= 0
      ? `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`
      : `0.${'0'.repeat(-exponent - 1)}${digits}`;
  return sign + withoutTrailingZeros(fixed);
}
