// AudioWorklet: microphone audio at the context's rate -> 16 kHz mono Float32 chunks for /stream.
// A windowed-sinc low-pass evaluated at each output instant does the anti-aliasing and the
// interpolation in one step; 100 ms chunks keep the WebSocket frame count low.
const TARGET_RATE = 16000;
const CHUNK = 1600;          // 100 ms at 16 kHz
const HALF_TAPS = 16;        // kernel half-width in input samples
const LEVEL_EVERY = 800;     // report the level every 50 ms

class Pcm16kProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE;                 // input samples per output sample
    this.cutoff = Math.min(1, 1 / this.step) * 0.45;      // cycles per input sample, below 8 kHz
    this.input = new Float32Array(0);                     // unconsumed input, with HALF_TAPS of history
    this.pos = HALF_TAPS;                                 // next output instant, in input samples
    this.out = new Float32Array(CHUNK);
    this.filled = 0;
    this.sumSquares = 0;
    this.levelCount = 0;
    this.stopped = false;
    this.port.onmessage = ({ data }) => { if (data === "stop") this.stopped = true; };
  }

  kernel(d) {
    const x = 2 * this.cutoff * d;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const hann = 0.5 + 0.5 * Math.cos(Math.PI * d / (HALF_TAPS + 1));
    return 2 * this.cutoff * sinc * hann;
  }

  resampleInto(samples) {
    const joined = new Float32Array(this.input.length + samples.length);
    joined.set(this.input);
    joined.set(samples, this.input.length);
    while (this.pos + HALF_TAPS < joined.length) {
      const centre = Math.floor(this.pos);
      let acc = 0;
      for (let n = centre - HALF_TAPS + 1; n <= centre + HALF_TAPS; n++) {
        acc += joined[n] * this.kernel(this.pos - n);
      }
      this.emit(this.step === 1 ? joined[centre] : acc);
      this.pos += this.step;
    }
    const keepFrom = Math.max(0, Math.floor(this.pos) - HALF_TAPS);
    this.input = joined.slice(keepFrom);
    this.pos -= keepFrom;
  }

  emit(value) {
    this.out[this.filled++] = value;
    this.sumSquares += value * value;
    if (++this.levelCount === LEVEL_EVERY) {
      this.port.postMessage({ level: Math.sqrt(this.sumSquares / LEVEL_EVERY) });
      this.sumSquares = 0;
      this.levelCount = 0;
    }
    if (this.filled === CHUNK) {
      const chunk = this.out;
      this.port.postMessage({ pcm: chunk }, [chunk.buffer]);
      this.out = new Float32Array(CHUNK);
      this.filled = 0;
    }
  }

  process(inputs) {
    if (this.stopped) return false;   // the page detached us: let the node be collected
    const channels = inputs[0];
    if (channels && channels.length > 0) {
      const mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
      }
      this.resampleInto(mono);
    }
    return true;
  }
}

registerProcessor("pcm-16k", Pcm16kProcessor);
