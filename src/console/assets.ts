// The console's browser code and styles: dist/console (built by `npm run build`) when it is newer than the
// sources, else bundled here once with esbuild (while someone edits them). Nothing is loaded from elsewhere.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../config.ts';

export const BROWSER_SRC = resolve(PACKAGE_ROOT, 'src/console/browser');
export const BUILT = resolve(PACKAGE_ROOT, 'dist/console');

export interface ConsoleAssets {
  js: string;
  css: string;
}

let cached: Promise<ConsoleAssets> | null = null;

function newestSource(): number {
  return Math.max(...readdirSync(BROWSER_SRC).map((f) => statSync(join(BROWSER_SRC, f)).mtimeMs));
}

/** The bundled page code and styles, read or built once per process. */
export function consoleAssets(): Promise<ConsoleAssets> {
  cached ??= load().catch((err) => {
    cached = null; // a failed build is tried again at the next request
    throw err;
  });
  return cached;
}

async function load(): Promise<ConsoleAssets> {
  const js = join(BUILT, 'app.js');
  const css = join(BUILT, 'app.css');
  if (existsSync(js) && existsSync(css) && (!existsSync(BROWSER_SRC) || statSync(js).mtimeMs >= newestSource())) {
    return { js: readFileSync(js, 'utf8'), css: readFileSync(css, 'utf8') };
  }
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(BROWSER_SRC, 'app.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    write: false,
    outdir: BUILT,
    logLevel: 'silent',
  });
  const file = (ext: string) => out.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
  return { js: file('.js'), css: file('.css') };
}
