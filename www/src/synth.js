// Grows a synthetic Filecoin-like chain into the open store, epoch by epoch, at a chosen speed.
//
// The generator is deterministic per seed, so the chain's position (seed, genesis time, epochs
// written) is all the page persists: after a reload it replays that many epochs without
// writing them and continues the same chain. An epoch counts as written only once its blocks
// are stored and the head change has returned; an epoch that failed is retried as is.

/** Generator settings: a small state tree so the page shows compactions within seconds. */
export const SYNTH_DEFAULTS = Object.freeze({
  stateObjects: 400,
  churnPercent: 3,
  maxBlocksPerTipset: 3,
  messagesPerBlock: 4,
  nullRoundPerMille: 50,
  // Head timestamps run ahead of the wall clock, so the head always counts as in sync.
  blockTimeSecs: 30,
});

export class SynthDriver {
  /**
   * `ChainClass`: the package's synthetic chain class. `store()`: the open store or null.
   * `position`: the persisted position or null. Callbacks: `onEpoch(epoch)` after each
   * written epoch, `onPosition(position)` to persist, `onError(e)` when an epoch fails (the
   * driver pauses), `onState(running)` when it starts or pauses.
   */
  constructor({ ChainClass, store, position, onEpoch, onPosition, onError, onState }) {
    this.ChainClass = ChainClass;
    this.store = store;
    this.position = position ?? null;
    this.onEpoch = onEpoch;
    this.onPosition = onPosition;
    this.onError = onError;
    this.onState = onState;
    this.chain = null;
    this.pending = null;
    this.running = false;
    this.busy = null;
    this.epochsPerSecond = 4;
    this.timer = null;
    this.wake = null;
    // Each start begins a new loop generation; a loop from an earlier one exits.
    this.generation = 0;
  }

  /** Epochs written to the store so far. */
  get epochs() {
    return this.position?.epochs ?? 0;
  }

  /** Blocks and bytes the epochs written so far brought that no earlier epoch had (each counted once). */
  get written() {
    return { blocks: this.position?.blocks ?? 0, bytes: this.position?.bytes ?? 0 };
  }

  /** Builds the generator, replaying the epochs already written. */
  ensureChain() {
    if (this.chain) return this.chain;
    if (!this.position) {
      this.position = {
        seed: Math.floor(Math.random() * 2 ** 31),
        genesisTimestamp: Math.floor(Date.now() / 1000),
        epochs: 0,
        blocks: 0,
        bytes: 0,
      };
      this.onPosition?.(this.position);
    }
    const chain = new this.ChainClass({
      ...SYNTH_DEFAULTS,
      seed: this.position.seed,
      genesisTimestamp: this.position.genesisTimestamp,
    });
    if (this.position.epochs > 0) chain.skip(this.position.epochs);
    this.chain = chain;
    return chain;
  }

  /** Writes one epoch (the failed one again, if the last attempt failed). */
  async step() {
    if (this.busy) return this.busy;
    this.busy = this.stepInner().finally(() => {
      this.busy = null;
    });
    return this.busy;
  }

  async stepInner() {
    const store = this.store();
    if (!store) throw new Error('no store is open');
    const chain = this.ensureChain();
    // The epoch arrives as a CAR rooted at its tipset, as a node receives chain data:
    // importing it stores every block in one batch, then applies the tipset as the head.
    const epoch = this.pending ?? chain.nextEpochCar();
    this.pending = epoch;
    await store.importCar(epoch.car);
    this.pending = null;
    this.position = {
      ...this.position,
      epochs: this.position.epochs + 1,
      blocks: (this.position.blocks ?? 0) + epoch.newBlocks,
      bytes: (this.position.bytes ?? 0) + epoch.newBytes,
    };
    this.onPosition?.(this.position);
    this.onEpoch?.(epoch);
    return epoch;
  }

  setSpeed(epochsPerSecond) {
    this.epochsPerSecond = Math.max(0.1, Number(epochsPerSecond) || 1);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.generation += 1;
    this.onState?.(true);
    this.loop(this.generation);
  }

  pause() {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    this.wake?.();
    this.onState?.(false);
  }

  async loop(generation) {
    const live = () => this.running && this.generation === generation;
    while (live()) {
      const t0 = performance.now();
      try {
        await this.step();
      } catch (e) {
        if (live()) this.pause();
        this.onError?.(e);
        return;
      }
      if (!live()) return;
      const wait = Math.max(0, 1000 / this.epochsPerSecond - (performance.now() - t0));
      await new Promise((ok) => {
        this.wake = ok;
        this.timer = setTimeout(ok, wait);
      });
      this.wake = null;
    }
  }

  /** Stops and forgets the generator (the store closed); the position stays persisted. */
  detach() {
    this.pause();
    this.chain?.free?.();
    this.chain = null;
    this.pending = null;
  }
}
