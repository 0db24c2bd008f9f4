// Dev-only: runs an ONNX file with onnxruntime (npm package onnxruntime-node, CPU build) on a
// float32 .npy input and writes every output as <out_prefix><name>.npy.
//   cd /tmp/ort && npm install onnxruntime-node --ignore-scripts   (the CPU binary ships in the package)
//   NODE_PATH=/tmp/ort/node_modules node tools/dev/ort_run.js model.onnx input.npy out_prefix
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  const hlen = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + hlen);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) throw new Error('need a C-order float32 .npy');
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const off = 10 + hlen;
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
  return { shape, data };
}

function writeNpy(path, t) {
  let data = t.data, descr = '<f4';
  if (data instanceof BigInt64Array) data = Float32Array.from(data, Number);
  else if (data instanceof Int32Array) data = Float32Array.from(data);
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + h.length + 1) % 64);
  h = h + ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

(async () => {
  const [model, input, prefix] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const x = readNpy(input);
  const feeds = {};
  feeds[s.inputNames[0]] = new ort.Tensor('float32', x.data, x.shape);
  const out = await s.run(feeds);
  for (const name of s.outputNames) {
    writeNpy(prefix + name.replace(/[^A-Za-z0-9_]/g, '_') + '.npy', out[name]);
    console.log(name, out[name].dims.join('x'));
  }
})().catch(e => { console.error(e.message); process.exit(1); });
