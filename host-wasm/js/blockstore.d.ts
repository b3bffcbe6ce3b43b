import type { Blockstore, InputPair, Pair } from 'interface-blockstore';
import type { CID } from 'multiformats/cid';
import type { SplitStore, SplitStoreConfig } from './splitstore_wasm.js';

/** Every method's options: an `AbortSignal` rejects the call (or ends the iteration). */
export interface AbortOptions {
  signal?: AbortSignal;
}

export interface SplitStoreBlockstoreOptions {
  /**
   * Pin what is put (default true): each block put through this Blockstore is pinned
   * (`SplitStore.protect`), so no compaction drops it, and `delete` unpins it; `getAll` lists
   * the pinned blocks. With `false`, blocks put here are treated as chain data (a compaction
   * keeps what the head's live set holds) and `getAll` lists every stored block.
   */
  pin?: boolean;
  /** Blocks per atomic write or read of the batch methods (default 256). */
  batchSize?: number;
}

/**
 * An `interface-blockstore` 7 Blockstore over a SplitStore, for Helia and js-stores users.
 * A missing block rejects with the js-stores `NotFoundError`; an aborted signal rejects
 * with the signal's reason.
 */
export declare class SplitStoreBlockstore implements Blockstore {
  constructor(store: SplitStore, options?: SplitStoreBlockstoreOptions);
  /** Loads the module (once), opens the store `name` and wraps it. */
  static open(name: string, config?: SplitStoreConfig, options?: SplitStoreBlockstoreOptions): Promise<SplitStoreBlockstore>;
  /** The SplitStore underneath: head changes, compactions, info. */
  readonly store: SplitStore;
  put(cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID>;
  putMany(source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID>;
  get(cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array>;
  getMany(source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair>;
  has(cid: CID, options?: AbortOptions): Promise<boolean>;
  delete(cid: CID, options?: AbortOptions): Promise<void>;
  deleteMany(source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID>;
  getAll(options?: AbortOptions): AsyncGenerator<Pair>;
  /** Closes the SplitStore underneath. */
  close(): Promise<void>;
}
