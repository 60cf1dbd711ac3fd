// C's printf "%.14g" (LUA_NUMBER_FMT), which io.write uses for floats.
// fengari's own number formatting differs (1e+20 prints in full), so the
// io library formats floats itself.

const PRECISION = 14;

function withoutTrailingZeros(digits: string): string {
  return digits.includes('.') ? digits.replace(/\.?0+$/, '') : digits;
}

export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const [mantissa, exponentText] = n.toExponential(PRECISION - 1).split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= PRECISION) {
    const sign = exponent < 0 ? '-' : '+';
    return `${withoutTrailingZeros(mantissa)}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return withoutTrailingZeros(n.toFixed(PRECISION - 1 - exponent));
}
