// One seed per test file run for everything random in a test, so a failure can be replayed:
//   TEST_SEED=<seed> npx vitest run <file>
// fast-check takes it as `{ seed: SEED }`; other randomness draws from `mulberry32(SEED)`. Call
// `printSeedOnFailure()` at the top of the file: a failing test then prints the seed to replay it.
import { beforeEach } from 'vitest';

function seedFromEnv(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return Date.now() % 0x7fffffff;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`TEST_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return n | 0; // fast-check seeds are 32-bit integers
}

export const SEED = seedFromEnv(process.env.TEST_SEED);

/** A small seeded PRNG (mulberry32): uniform floats in [0, 1), like Math.random. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prints the seed when a test of this file fails (timeouts included), with the command to replay it. */
export function printSeedOnFailure(): void {
  beforeEach(({ onTestFailed, task }) => {
    onTestFailed(() => {
      console.error(`[seed] "${task.name}" failed with TEST_SEED=${SEED}; replay: TEST_SEED=${SEED} npx vitest run ${task.file.name}`);
    });
  });
}
