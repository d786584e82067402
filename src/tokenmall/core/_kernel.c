/* The compiled kernel of the rules engine, on the engine's own Python objects:
 *
 * - place_orders: a batch of orders paid in cash or in SP at a merchant (SPEC §4 order, then
 *   SPEC §5: levels and forced exits), each exactly what `Engine.order` does, for callers that
 *   keep none of what an order changed (the simulator, through Engine.place_orders);
 * - holding_fund: settle_day's holding fund on an ordinary day (settlement.py).
 *
 * core/engine.py and settlement.py run the same in Python when this module was not built;
 * tests/test_kernel.py compares the two.
 *
 * The arithmetic is exact or not done here: amounts, balances and totals are read as 64-bit
 * integers and every product and sum is checked (__int128, __builtin_*_overflow). An order
 * this code does not take whole -- any id, amount or value it cannot check, any rejection,
 * any number that does not fit -- goes to the Python path (`slow`), before anything of it is
 * changed. The exit queue's keys are Python integers of 150 bits and more: they are computed
 * with Python's own integer operations, as core/exits.py computes them.
 *
 * The engine's totals are held in C while orders run and written back before any Python code
 * runs (the slow path, the exit queue's first_due and the forced exits) and at the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

typedef long long i64;
typedef __int128 i128;

#define ID_CHARS_MAX 64
#define REFERRAL_LEVELS_MAX 16

/* The engine's totals this code holds; their indices are their names' in NAME (below). */
enum { POOL, SUPPLY, ISSUED, DAY_SALES, SALES, CONTRIBUTIONS, TOTALS };

typedef struct {
    PyObject *engine;
    i64 total[TOTALS];
} Totals;

/* A non-negative Python int that fits in 63 bits, or -1 (with no exception set). */
static i64 small(PyObject *value) {
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_Clear();
        return -1;
    }
    int overflow = 0;
    i64 result = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (result == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    return result < 0 ? -1 : result;
}


/* An id the fast path takes: 1-64 ASCII letters and digits (any other goes to Python, which
 * checks SPEC v2 §4's whole pattern). */
static int plain_id(PyObject *value) {
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) return 0;
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    if (length < 1 || length > ID_CHARS_MAX) return 0;
    const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(value);
    for (Py_ssize_t index = 0; index < length; index++) {
        Py_UCS1 c = chars[index];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

/* floor(a × b × c / d) for non-negative a, b, c and positive d, or -1 if it does not fit. */
static i64 mul_div(i64 a, i64 b, i64 c, i128 d) {
    i128 ab, abc;
    if (__builtin_mul_overflow((i128)a, (i128)b, &ab)) return -1;
    if (__builtin_mul_overflow(ab, (i128)c, &abc)) return -1;
    i128 result = abc / d;
    return result > (i128)LLONG_MAX ? -1 : (i64)result;
}

/* A ratio (numerator, denominator) of small non-negative integers, denominator > 0. */
static int ratio(PyObject *pair, i64 *numerator, i64 *denominator) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) return 0;
    *numerator = small(PyTuple_GET_ITEM(pair, 0));
    *denominator = small(PyTuple_GET_ITEM(pair, 1));
    return *numerator >= 0 && *denominator > 0 && *numerator < (1LL << 31) &&
           *denominator < (1LL << 31);
}

static int set_small(PyObject *list, Py_ssize_t index, i64 value) {
    PyObject *item = PyLong_FromLongLong(value);
    if (item == NULL) return -1;
    return PyList_SetItem(list, index, item); /* steals item */
}

/* Attribute names, interned once (a lookup by a C string makes a str object each time). */
enum {
    /* the totals first, at their Totals indices */
    A_REFERRER = TOTALS, A_SLOT, A_ID, A_EXITED, A_SHIFT, A_OFFSET, A_HEAP, A_LAST_PRICE,
    A_FROZEN, A_SP, A_KEEPING, NAMES
};
static const char *NAME_TEXT[NAMES] = {
    "pool",   "supply", "issued", "day_sales",  "sales",  "contributions", "referrer",
    "slot",   "id",     "exited", "shift",      "offset", "heap",          "last_price",
    "frozen", "sp",     "keeping"};
static PyObject *NAME[NAMES];

static PyObject *attr(PyObject *object, int name) { return PyObject_GetAttr(object, NAME[name]); }

static i64 small_named(PyObject *object, int name) {
    PyObject *value = attr(object, name);
    i64 result = small(value);
    Py_XDECREF(value);
    return result;
}

/* Read the totals; 0 if one is not a 63-bit non-negative integer (then nothing runs here). */
static int load(Totals *totals) {
    for (int index = 0; index < TOTALS; index++) {
        totals->total[index] = small_named(totals->engine, index);
        if (totals->total[index] < 0) return 0;
    }
    return 1;
}

/* Write the totals back, and the last defined price as every command leaves it (SPEC §5). */
static int store(Totals *totals) {
    for (int index = 0; index < TOTALS; index++) {
        PyObject *value = PyLong_FromLongLong(totals->total[index]);
        if (value == NULL) return -1;
        int failed = PyObject_SetAttr(totals->engine, NAME[index], value);
        Py_DECREF(value);
        if (failed) return -1;
    }
    if (totals->total[SUPPLY]) {
        PyObject *price = Py_BuildValue("(LL)", totals->total[POOL], totals->total[SUPPLY]);
        if (price == NULL) return -1;
        int failed = PyObject_SetAttr(totals->engine, NAME[A_LAST_PRICE], price);
        Py_DECREF(price);
        if (failed) return -1;
    }
    return 0;
}

/* A relative margin far above the rounding of the few float operations of a screen (each
 * within 2**-52): a screen only ever skips work whose exact answer it is sure of. */
#define SCREEN_MARGIN 1e-9

typedef struct {
    /* the engine's parts, borrowed from `refs` for the batch */
    PyObject *consumers, *merchants, *today, *closed, *ep, *quota, *sp, *level, *trigger_key;
    PyObject *owners;
    PyObject *leveled, *queue, *heappush, *slow, *exits;
    i64 contribution[2], buyer_share[2], quota_multiple[2];
    i64 referral[REFERRAL_LEVELS_MAX][2];
    Py_ssize_t referral_levels;
    i64 total_issuance, fen_max;
    i64 *thresholds;
    Py_ssize_t thresholds_count;
    int exit_enabled, check_closed, keep_orders;
    Py_ssize_t entries_per_consumer, heap_slack;
    /* The exit queue as ExitQueue holds it (owned); read again after any Python code ran,
     * which may have rebuilt it (a new heap, offset 0). */
    PyObject *shift, *offset, *heap;
    long shift_bits;
    double offset_float;
    PyObject *top;    /* the heap's first entry when top_float was read (owned), or NULL */
    double top_float; /* its key as a float, NAN if it has none */
} Batch;

static void forget_queue(Batch *b) {
    Py_CLEAR(b->shift);
    Py_CLEAR(b->offset);
    Py_CLEAR(b->heap);
    Py_CLEAR(b->top);
}

static int read_queue(Batch *b) {
    forget_queue(b);
    b->shift = attr(b->queue, A_SHIFT);
    b->offset = attr(b->queue, A_OFFSET);
    b->heap = attr(b->queue, A_HEAP);
    if (b->shift == NULL || b->offset == NULL || b->heap == NULL) return -1;
    if (!PyList_CheckExact(b->heap)) {
        PyErr_SetString(PyExc_TypeError, "the exit queue's heap is not a list");
        return -1;
    }
    b->shift_bits = PyLong_AsLong(b->shift);
    b->offset_float = PyLong_AsDouble(b->offset);
    if (PyErr_Occurred()) { /* beyond a float: no screens, exact answers only */
        PyErr_Clear();
        b->offset_float = NAN;
    }
    return 0;
}

/* A Python int as a float, NAN if it is beyond a float's range. */
static double as_float(PyObject *value) {
    double result = PyLong_AsDouble(value);
    if (result == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NAN;
    }
    return result;
}

/* Levels (only rise) and exit-queue entries of the changed rows: Engine._update_levels and
 * ExitQueue.note_changes, in their order. */
static int after_changes(Batch *b, const Py_ssize_t *slots, int count) {
    for (int n = 0; n < count; n++) {
        Py_ssize_t slot = slots[n];
        i64 current = small(PyList_GET_ITEM(b->level, slot));
        i64 units = small(PyList_GET_ITEM(b->ep, slot));
        if (current < 0 || units < 0) {
            PyErr_SetString(PyExc_OverflowError, "a level or balance the kernel cannot hold");
            return -1;
        }
        if (current < b->thresholds_count && units >= b->thresholds[current]) {
            Py_ssize_t level = 0; /* bisect_right */
            while (level < b->thresholds_count && b->thresholds[level] <= units) level++;
            if (level > current) {
                if (set_small(b->level, slot, level) < 0) return -1;
                PyObject *key = PyLong_FromSsize_t(slot);
                if (key == NULL) return -1;
                PyObject *found =
                    PyDict_SetDefault(b->leveled, key, PyList_GET_ITEM(b->owners, slot));
                Py_DECREF(key);
                if (found == NULL) return -1;
            }
        }
    }
    /* note_changes: key = (quota << shift) // ep + offset; a new entry where it fell */
    for (int n = 0; n < count; n++) {
        Py_ssize_t slot = slots[n];
        PyObject *units = PyList_GET_ITEM(b->ep, slot);
        i64 held = small(units);
        if (held <= 0) {
            Py_INCREF(Py_None);
            if (PyList_SetItem(b->trigger_key, slot, Py_None) < 0) return -1;
            continue;
        }
        PyObject *bound = PyList_GET_ITEM(b->trigger_key, slot);
        PyObject *quota = PyList_GET_ITEM(b->quota, slot);
        if (bound != Py_None) {
            /* Screen: a key surely above its bound pushes nothing (an order that raised the
             * buyer's trigger price); only a near or lower one is computed exactly. */
            double key_float = ldexp(as_float(quota), (int)b->shift_bits) / (double)held +
                               b->offset_float;
            if (key_float > as_float(bound) * (1 + SCREEN_MARGIN)) continue;
        }
        PyObject *shifted = PyNumber_Lshift(quota, b->shift);
        if (shifted == NULL) return -1;
        PyObject *part = PyNumber_FloorDivide(shifted, units);
        Py_DECREF(shifted);
        if (part == NULL) return -1;
        PyObject *key = PyNumber_Add(part, b->offset);
        Py_DECREF(part);
        if (key == NULL) return -1;
        int lower = bound == Py_None ? 1 : PyObject_RichCompareBool(key, bound, Py_LT);
        if (lower <= 0) {
            Py_DECREF(key);
            if (lower < 0) return -1;
            continue;
        }
        Py_INCREF(key);
        if (PyList_SetItem(b->trigger_key, slot, key) < 0) {
            Py_DECREF(key);
            return -1;
        }
        PyObject *owner_id = attr(PyList_GET_ITEM(b->owners, slot), A_ID);
        if (owner_id == NULL) {
            Py_DECREF(key);
            return -1;
        }
        PyObject *entry = Py_BuildValue("(NNn)", key, owner_id, slot); /* takes both */
        if (entry == NULL) return -1;
        PyObject *pushed = PyObject_CallFunctionObjArgs(b->heappush, b->heap, entry, NULL);
        Py_DECREF(entry);
        if (pushed == NULL) return -1;
        Py_DECREF(pushed);
    }
    if (PyList_GET_SIZE(b->heap) >
        b->entries_per_consumer * PyList_GET_SIZE(b->owners) + b->heap_slack) {
        PyObject *rebuilt = PyObject_CallMethod(b->queue, "rebuild", NULL);
        if (rebuilt == NULL) return -1;
        Py_DECREF(rebuilt);
        if (read_queue(b) < 0) return -1;
    }
    return 0;
}

/* SPEC §5 (2): whether a forced exit is due at the price after the order, as Engine._after
 * asks it (the heap's lowest bound first, then first_due, which tidies the heap as it
 * looks); the exits themselves run in Python. */
static int run_exits_if_due(Batch *b, Totals *totals) {
    if (!PyList_GET_SIZE(b->heap)) return 0;
    PyObject *top = PyList_GET_ITEM(b->heap, 0);
    if (!PyTuple_Check(top) || PyTuple_GET_SIZE(top) < 1) {
        PyErr_SetString(PyExc_TypeError, "an exit queue entry is not a tuple");
        return -1;
    }
    if (top != b->top) {
        Py_INCREF(top);
        Py_XSETREF(b->top, top);
        b->top_float = as_float(PyTuple_GET_ITEM(top, 0));
    }
    PyObject *price = NULL, *pool = NULL, *supply = NULL;
    int status = -1;
    if (totals->total[SUPPLY]) {
        /* Screen: top × S > (P << shift) + offset × S, surely: nobody is due. */
        double supply_float = (double)totals->total[SUPPLY];
        double left = b->top_float * supply_float;
        double right = ldexp((double)totals->total[POOL], (int)b->shift_bits) +
                       b->offset_float * supply_float;
        if (left > right * (1 + SCREEN_MARGIN)) return 0;
        pool = PyLong_FromLongLong(totals->total[POOL]);
        supply = PyLong_FromLongLong(totals->total[SUPPLY]);
    } else {
        price = attr(totals->engine, A_LAST_PRICE);
        if (price == NULL) goto done;
        if (!PyTuple_Check(price) || PyTuple_GET_SIZE(price) != 2) {
            PyErr_SetString(PyExc_TypeError, "last_price is not a pair");
            goto done;
        }
        pool = PyTuple_GET_ITEM(price, 0);
        supply = PyTuple_GET_ITEM(price, 1);
        Py_INCREF(pool);
        Py_INCREF(supply);
    }
    if (pool == NULL || supply == NULL) goto done;
    PyObject *left = PyNumber_Multiply(PyTuple_GET_ITEM(top, 0), supply);
    PyObject *shifted = PyNumber_Lshift(pool, b->shift);
    PyObject *moved = PyNumber_Multiply(b->offset, supply);
    PyObject *bound = shifted && moved ? PyNumber_Add(shifted, moved) : NULL;
    int due = left && bound ? PyObject_RichCompareBool(left, bound, Py_LE) : -1;
    Py_XDECREF(left);
    Py_XDECREF(shifted);
    Py_XDECREF(moved);
    Py_XDECREF(bound);
    if (due < 0) goto done;
    if (due) {
        if (store(totals) < 0) goto done;
        PyObject *slot = PyObject_CallMethod(b->queue, "first_due", "OO", pool, supply);
        if (slot == NULL) goto done;
        int any = slot != Py_None;
        Py_DECREF(slot);
        if (any) {
            PyObject *ran = PyObject_CallNoArgs(b->exits);
            if (ran == NULL) goto done;
            Py_DECREF(ran);
        }
        if (!load(totals)) {
            PyErr_SetString(PyExc_OverflowError, "a total the kernel cannot hold");
            goto done;
        }
        if (read_queue(b) < 0) goto done;
    }
    status = 0;
done:
    Py_XDECREF(price);
    Py_XDECREF(pool);
    Py_XDECREF(supply);
    return status;
}

typedef struct {
    Py_ssize_t slot;
    i64 units;
    PyObject *id; /* the referrer's id (a reference this order holds until it is done) */
} Grant;

static void release(Grant *grants, int granted) {
    for (int n = 0; n < granted; n++) Py_DECREF(grants[n].id);
}

/* _referrer_grants: EP for each referrer up the buyer's chain whose rate is > 0 and who has
 * quota left, at the price before the order, within the room left (*room_units), into
 * grants; their sum added to *granted_units. 1; or 0 (Python's path) or -1 (an error), with
 * nothing kept. Nothing of the state changes here. */
static int referrer_grants(Batch *b, PyObject *buyer, i64 contribution_fen, i64 pool_fen,
                           i64 supply_units, i64 *room_units, i64 *granted_units, Grant *grants,
                           int *granted) {
    PyObject *referrer_id = attr(buyer, A_REFERRER);
    if (referrer_id == NULL) return -1;
    int status = 1;
    if (referrer_id != Py_None && *room_units) {
        for (Py_ssize_t level = 0; level < b->referral_levels; level++) {
            PyObject *referrer = PyDict_GetItemWithError(b->consumers, referrer_id);
            i64 slot = referrer == NULL ? -1 : small_named(referrer, A_SLOT);
            i64 quota_left = slot >= 0 && slot < PyList_GET_SIZE(b->quota)
                                 ? small(PyList_GET_ITEM(b->quota, slot))
                                 : -1;
            if (quota_left < 0) { /* no such row, or a quota beyond 63 bits: Python decides */
                status = PyErr_Occurred() ? -1 : 0;
                break;
            }
            i64 numerator = b->referral[level][0], denominator = b->referral[level][1];
            if (numerator && quota_left > 0) {
                i64 want = mul_div(contribution_fen, numerator, supply_units,
                                   (i128)denominator * pool_fen);
                if (want < 0) {
                    status = 0;
                    break;
                }
                i64 units = want < *room_units ? want : *room_units;
                if (units) {
                    Grant *grant = &grants[*granted];
                    grant->id = attr(referrer, A_ID);
                    if (grant->id == NULL) {
                        status = -1;
                        break;
                    }
                    grant->slot = slot;
                    grant->units = units;
                    ++*granted;
                    *room_units -= units;
                    *granted_units += units;
                }
            }
            PyObject *next_id = attr(referrer, A_REFERRER);
            Py_SETREF(referrer_id, next_id);
            if (referrer_id == NULL) {
                status = -1;
                break;
            }
            if (referrer_id == Py_None) break;
        }
    }
    Py_XDECREF(referrer_id);
    if (status != 1) {
        release(grants, *granted);
        *granted = 0;
    }
    return status;
}

/* One order on the fast path: 1 if applied, 0 if it must go to Python (nothing changed),
 * -1 on an error. */
static int fast_order(Batch *b, Totals *totals, PyObject *order_id, PyObject *buyer,
                      i64 amount_fen) {
    i64 pool_fen = totals->total[POOL], supply_units = totals->total[SUPPLY];
    if (!supply_units) {
        PyObject *price = attr(totals->engine, A_LAST_PRICE);
        if (price == NULL) return -1;
        int ok = PyTuple_Check(price) && PyTuple_GET_SIZE(price) == 2;
        pool_fen = ok ? small(PyTuple_GET_ITEM(price, 0)) : -1;
        supply_units = ok ? small(PyTuple_GET_ITEM(price, 1)) : -1;
        Py_DECREF(price);
    }
    if (pool_fen <= 0 || supply_units <= 0) return 0; /* no price to divide by: Python's path */
    i64 contribution_fen = mul_div(amount_fen, b->contribution[0], 1, b->contribution[1]);
    i64 room_units = b->total_issuance - totals->total[ISSUED];
    i64 want = mul_div(contribution_fen, b->buyer_share[0], supply_units,
                       (i128)b->buyer_share[1] * pool_fen);
    if (contribution_fen < 0 || room_units < 0 || want < 0) return 0;
    i64 buyer_units = want < room_units ? want : room_units;
    room_units -= buyer_units;
    i64 granted_units = buyer_units;
    Grant grants[REFERRAL_LEVELS_MAX];
    int granted = 0;
    int walked = referrer_grants(b, buyer, contribution_fen, pool_fen, supply_units, &room_units,
                                 &granted_units, grants, &granted);
    if (walked <= 0) return walked;

    /* Everything that can fail to fit, before anything changes. */
    i64 quota_fen = mul_div(amount_fen, b->quota_multiple[0], 1, b->quota_multiple[1]);
    i64 buyer_slot = small_named(buyer, A_SLOT);
    i64 new_total[TOTALS];
    int fits = quota_fen >= 0 && buyer_slot >= 0 && buyer_slot < PyList_GET_SIZE(b->ep);
    i64 buyer_ep = fits ? small(PyList_GET_ITEM(b->ep, buyer_slot)) : -1;
    i64 buyer_quota = fits ? small(PyList_GET_ITEM(b->quota, buyer_slot)) : -1;
    fits = fits && buyer_ep >= 0 && buyer_quota >= 0 &&
           !__builtin_add_overflow(totals->total[POOL], contribution_fen, &new_total[POOL]) &&
           !__builtin_add_overflow(totals->total[SUPPLY], granted_units, &new_total[SUPPLY]) &&
           !__builtin_add_overflow(totals->total[ISSUED], granted_units, &new_total[ISSUED]) &&
           !__builtin_add_overflow(totals->total[DAY_SALES], amount_fen,
                                   &new_total[DAY_SALES]) &&
           !__builtin_add_overflow(totals->total[SALES], amount_fen, &new_total[SALES]) &&
           !__builtin_add_overflow(totals->total[CONTRIBUTIONS], contribution_fen,
                                   &new_total[CONTRIBUTIONS]) &&
           new_total[POOL] < LLONG_MAX / 2 && new_total[SUPPLY] < LLONG_MAX / 2 &&
           buyer_quota < LLONG_MAX / 2 && quota_fen < LLONG_MAX / 2;
    for (int n = 0; fits && n < granted; n++)
        fits = small(PyList_GET_ITEM(b->ep, grants[n].slot)) >= 0;
    if (!fits) {
        release(grants, granted);
        return 0;
    }

    /* Apply: _cash_order's steps, in its order. EP of each holder ≤ supply, so no sum below
     * overflows once the new supply fits. */
    Py_ssize_t touched[REFERRAL_LEVELS_MAX + 1];
    int touched_count = 0;
    PyObject *grant_tuple = b->keep_orders ? PyTuple_New(granted) : NULL; /* for the record */
    if (b->keep_orders && grant_tuple == NULL) goto fail;
    for (int n = 0; n < granted; n++) {
        i64 units = small(PyList_GET_ITEM(b->ep, grants[n].slot));
        if (set_small(b->ep, grants[n].slot, units + grants[n].units) < 0) goto fail;
        touched[touched_count++] = grants[n].slot;
        if (grant_tuple != NULL) {
            PyObject *pair = Py_BuildValue("(OL)", grants[n].id, grants[n].units);
            if (pair == NULL) goto fail;
            PyTuple_SET_ITEM(grant_tuple, n, pair);
        }
    }
    /* read again: a referrer up the chain may be the buyer itself */
    buyer_ep = small(PyList_GET_ITEM(b->ep, buyer_slot));
    if (buyer_units && set_small(b->ep, buyer_slot, buyer_ep + buyer_units) < 0) goto fail;
    if (quota_fen && set_small(b->quota, buyer_slot, buyer_quota + quota_fen) < 0) goto fail;
    if (buyer_units || quota_fen) touched[touched_count++] = buyer_slot;
    for (int index = 0; index < TOTALS; index++) totals->total[index] = new_total[index];
    PyObject *exited = attr(buyer, A_EXITED);
    if (exited == NULL) goto fail;
    int was_exited = PyObject_IsTrue(exited);
    Py_DECREF(exited);
    if (was_exited < 0 || (was_exited && PyObject_SetAttr(buyer, NAME[A_EXITED], Py_False) < 0))
        goto fail;
    if (b->keep_orders) { /* OrderBook.add_cash's record */
        PyObject *buyer_id = attr(buyer, A_ID);
        if (buyer_id == NULL) goto fail;
        PyObject *record = Py_BuildValue("(NLOLLLO()O)", buyer_id, amount_fen, Py_True,
                                         contribution_fen, quota_fen, buyer_units, grant_tuple,
                                         Py_False);
        if (record == NULL) goto fail;
        int failed = PyDict_SetItem(b->today, order_id, record);
        Py_DECREF(record);
        if (failed) goto fail;
    }
    release(grants, granted);
    Py_XDECREF(grant_tuple);
    if (after_changes(b, touched, touched_count) < 0) return -1;
    if (b->exit_enabled && run_exits_if_due(b, totals) < 0) return -1;
    return 1;
fail:
    release(grants, granted);
    Py_XDECREF(grant_tuple);
    return -1;
}

/* A truth value of an attribute: 1, 0, or -1 on an error. */
static int attr_true(PyObject *object, int name) {
    PyObject *value = attr(object, name);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* One order paid in SP at a merchant (_stable_order, then SPEC §5): 1 if applied, 0 if it
 * must go to Python (an unknown merchant, a frozen account, too little SP: nothing changed),
 * -1 on an error. */
static int stable_order(Batch *b, Totals *totals, PyObject *order_id, PyObject *buyer,
                        i64 amount_fen, PyObject *merchant_id) {
    PyObject *merchant = PyDict_GetItemWithError(b->merchants, merchant_id);
    if (merchant == NULL) return PyErr_Occurred() ? -1 : 0;
    int frozen = attr_true(buyer, A_FROZEN); /* refuse_frozen(buyer, merchant) */
    if (frozen == 0) frozen = attr_true(merchant, A_FROZEN);
    if (frozen) return frozen < 0 ? -1 : 0;
    i64 slot = small_named(buyer, A_SLOT);
    if (slot < 0 || slot >= PyList_GET_SIZE(b->sp)) return 0;
    i64 sp_fen = small(PyList_GET_ITEM(b->sp, slot));
    i64 merchant_sp_fen = small_named(merchant, A_SP);
    if (sp_fen < amount_fen || merchant_sp_fen < 0 || merchant_sp_fen > LLONG_MAX - amount_fen)
        return 0;
    if (set_small(b->sp, slot, sp_fen - amount_fen) < 0) return -1;
    PyObject *credited = PyLong_FromLongLong(merchant_sp_fen + amount_fen);
    if (credited == NULL) return -1;
    int failed = PyObject_SetAttr(merchant, NAME[A_SP], credited);
    Py_DECREF(credited);
    if (failed) return -1;
    if (b->keep_orders) { /* OrderBook.add_stable's record */
        PyObject *buyer_id = attr(buyer, A_ID);
        if (buyer_id == NULL) return -1;
        PyObject *record =
            Py_BuildValue("(NLOiii()()O)", buyer_id, amount_fen, Py_False, 0, 0, 0, Py_False);
        if (record == NULL) return -1;
        failed = PyDict_SetItem(b->today, order_id, record);
        Py_DECREF(record);
        if (failed) return -1;
    }
    if (b->exit_enabled && run_exits_if_due(b, totals) < 0) return -1;
    return 1;
}

static int read_batch(Batch *b, PyObject *config) {
    /* config: (slow, exits, heappush, fen_max, entries_per_consumer, heap_slack) */
    if (!PyTuple_Check(config) || PyTuple_GET_SIZE(config) != 6) return 0;
    b->slow = PyTuple_GET_ITEM(config, 0);
    b->exits = PyTuple_GET_ITEM(config, 1);
    b->heappush = PyTuple_GET_ITEM(config, 2);
    b->fen_max = small(PyTuple_GET_ITEM(config, 3));
    b->entries_per_consumer = small(PyTuple_GET_ITEM(config, 4));
    b->heap_slack = small(PyTuple_GET_ITEM(config, 5));
    if (b->fen_max <= 0 || b->entries_per_consumer <= 0 || b->heap_slack < 0) return 0;
    return 1;
}

/* place_orders(engine, orders, config) -> list of bool: see Engine.place_orders. */
static PyObject *place_orders(PyObject *module, PyObject *args) {
    PyObject *engine, *orders, *config;
    if (!PyArg_ParseTuple(args, "OO!O!", &engine, &PyList_Type, &orders, &PyTuple_Type, &config))
        return NULL;
    Batch b = {0};
    Totals totals = {.engine = engine};
    int fast = 0; /* whether this batch runs here (and holds the engine's totals) */
    PyObject *refs = PyList_New(0); /* owns what Batch borrows */
    PyObject *results = PyList_New(PyList_GET_SIZE(orders));
    if (refs == NULL || results == NULL) goto error;
    if (!read_batch(&b, config)) {
        PyErr_SetString(PyExc_ValueError, "place_orders: a malformed config");
        goto error;
    }
#define KEEP(target, expression)                               \
    do {                                                       \
        PyObject *kept_ = (expression);                        \
        if (kept_ == NULL || PyList_Append(refs, kept_) < 0) { \
            Py_XDECREF(kept_);                                 \
            goto error;                                        \
        }                                                      \
        Py_DECREF(kept_);                                      \
        target = kept_;                                        \
    } while (0)
    PyObject *book, *order_book, *params, *rates, *referral, *thresholds, *closed_count;
    KEEP(book, PyObject_GetAttrString(engine, "book"));
    KEEP(order_book, PyObject_GetAttrString(engine, "orders"));
    KEEP(params, PyObject_GetAttrString(engine, "params"));
    KEEP(rates, PyObject_GetAttrString(engine, "rates"));
    KEEP(b.consumers, PyObject_GetAttrString(engine, "consumers"));
    KEEP(b.leveled, PyObject_GetAttrString(engine, "leveled"));
    KEEP(b.queue, PyObject_GetAttrString(engine, "exit_queue"));
    KEEP(b.today, PyObject_GetAttrString(order_book, "today"));
    KEEP(b.closed, PyObject_GetAttrString(order_book, "closed"));
    KEEP(b.ep, PyObject_GetAttrString(book, "ep"));
    KEEP(b.quota, PyObject_GetAttrString(book, "quota"));
    KEEP(b.sp, PyObject_GetAttrString(book, "sp"));
    KEEP(b.merchants, PyObject_GetAttrString(engine, "merchants"));
    KEEP(b.level, PyObject_GetAttrString(book, "level"));
    KEEP(b.trigger_key, PyObject_GetAttrString(book, "trigger_key"));
    KEEP(b.owners, PyObject_GetAttrString(book, "owners"));
    KEEP(referral, PyObject_GetAttrString(rates, "referral"));
    KEEP(thresholds, PyObject_GetAttrString(params, "level_thresholds_units"));
    KEEP(closed_count, PyObject_CallMethod(b.closed, "__len__", NULL));
#undef KEEP
    b.check_closed = small(closed_count) != 0;
    b.keep_orders = attr_true(order_book, A_KEEPING); /* OrderBook.forget_orders */
    if (b.keep_orders < 0) goto error;
    PyObject *exit_enabled = PyObject_GetAttrString(params, "exit_enabled");
    if (exit_enabled == NULL) goto error;
    b.exit_enabled = PyObject_IsTrue(exit_enabled);
    Py_DECREF(exit_enabled);
    PyObject *total_issuance = PyObject_GetAttrString(params, "total_issuance_units");
    b.total_issuance = small(total_issuance);
    Py_XDECREF(total_issuance);

    /* What the fast path needs to hold in C; if anything does not fit, all go to Python. */
    fast = b.exit_enabled >= 0 && b.keep_orders >= 0 && b.total_issuance >= 0 && PyDict_CheckExact(b.consumers) &&
               PyDict_CheckExact(b.today) && PyDict_CheckExact(b.leveled) &&
               PyDict_CheckExact(b.merchants) && PyList_CheckExact(b.sp) &&
               PyList_CheckExact(b.ep) && PyList_CheckExact(b.quota) &&
               PyList_CheckExact(b.level) && PyList_CheckExact(b.trigger_key) &&
               PyList_CheckExact(b.owners) && PyList_CheckExact(referral) &&
               PyTuple_CheckExact(thresholds) && load(&totals);
    PyObject *contribution = fast ? PyObject_GetAttrString(rates, "contribution") : NULL;
    PyObject *buyer_share = fast ? PyObject_GetAttrString(rates, "buyer_share") : NULL;
    PyObject *quota_multiple = fast ? PyObject_GetAttrString(rates, "quota_multiple") : NULL;
    fast = fast && contribution && buyer_share && quota_multiple &&
           ratio(contribution, &b.contribution[0], &b.contribution[1]) &&
           ratio(buyer_share, &b.buyer_share[0], &b.buyer_share[1]) &&
           ratio(quota_multiple, &b.quota_multiple[0], &b.quota_multiple[1]);
    Py_XDECREF(contribution);
    Py_XDECREF(buyer_share);
    Py_XDECREF(quota_multiple);
    PyErr_Clear();
    b.referral_levels = fast ? PyList_GET_SIZE(referral) : 0;
    fast = fast && b.referral_levels <= REFERRAL_LEVELS_MAX;
    for (Py_ssize_t n = 0; fast && n < b.referral_levels; n++)
        fast = ratio(PyList_GET_ITEM(referral, n), &b.referral[n][0], &b.referral[n][1]);
    b.thresholds_count = fast ? PyTuple_GET_SIZE(thresholds) : 0;
    b.thresholds = PyMem_Malloc(sizeof(i64) * (b.thresholds_count + 1));
    if (b.thresholds == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t n = 0; fast && n < b.thresholds_count; n++) {
        b.thresholds[n] = small(PyTuple_GET_ITEM(thresholds, n));
        fast = b.thresholds[n] >= 0;
    }

    if (fast && read_queue(&b) < 0) goto error;
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(orders); index++) {
        PyObject *item = PyList_GET_ITEM(orders, index);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError,
                            "an order is (order_id, user_id, amount_fen, merchant_id or None)");
            goto error;
        }
        PyObject *order_id = PyTuple_GET_ITEM(item, 0), *user_id = PyTuple_GET_ITEM(item, 1);
        PyObject *amount = PyTuple_GET_ITEM(item, 2), *merchant_id = PyTuple_GET_ITEM(item, 3);
        int outcome = 0;
        if (fast && plain_id(order_id) && plain_id(user_id) && PyLong_CheckExact(amount) &&
            (merchant_id == Py_None || plain_id(merchant_id))) {
            i64 amount_fen = small(amount);
            PyObject *buyer = PyDict_GetItemWithError(b.consumers, user_id);
            if (buyer == NULL && PyErr_Occurred()) goto error;
            int exists = PyDict_Contains(b.today, order_id);
            if (exists < 0) goto error;
            if (!exists && b.check_closed) {
                exists = PySequence_Contains(b.closed, order_id);
                if (exists < 0) goto error;
            }
            if (buyer != NULL && !exists && amount_fen > 0 && amount_fen <= b.fen_max) {
                Py_INCREF(buyer);
                outcome = merchant_id == Py_None
                              ? fast_order(&b, &totals, order_id, buyer, amount_fen)
                              : stable_order(&b, &totals, order_id, buyer, amount_fen, merchant_id);
                Py_DECREF(buyer);
                if (outcome < 0) goto error;
            }
        }
        if (outcome == 0) { /* the Python path: Engine.order, as it would run alone */
            if (fast && store(&totals) < 0) goto error;
            PyObject *accepted =
                PyObject_CallFunctionObjArgs(b.slow, order_id, user_id, amount, merchant_id, NULL);
            if (accepted == NULL) goto error;
            PyList_SET_ITEM(results, index, accepted);
            if (fast && !load(&totals)) fast = 0; /* a total beyond 63 bits: Python from now */
            if (fast && read_queue(&b) < 0) goto error;
            continue;
        }
        Py_INCREF(Py_True);
        PyList_SET_ITEM(results, index, Py_True);
    }
    if (fast && store(&totals) < 0) goto error;
    forget_queue(&b);
    PyMem_Free(b.thresholds);
    Py_DECREF(refs);
    return results;
error:
    if (fast) { /* the totals held here are written back: what was applied stays applied */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (store(&totals) < 0) PyErr_Clear();
        PyErr_Restore(type, value, traceback);
    }
    forget_queue(&b);
    PyMem_Free(b.thresholds);
    Py_XDECREF(refs);
    Py_XDECREF(results);
    return NULL;
}

/* holding_fund(ep, quota, sp, dividends, fund_fen) -> (payments, weight_total) or None.
 *
 * settle_day's holding fund on an ordinary day (settlement._fast_payments): weights are EP
 * held where quota is left, each payment floor(weight × fund / Σweight), and nobody reaches
 * their quota. Then, in place, quota -= payment, sp += payment, dividends += payment, and the
 * payments (one per slot, zeros included) and Σweight are returned. None, with nothing
 * changed, when the Python code must decide: no fund or no weight, someone's payment reaches
 * their quota (water-filling), or a number beyond 63 bits. */
static PyObject *holding_fund(PyObject *module, PyObject *args) {
    PyObject *ep, *quota, *sp, *dividends, *fund_object;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O", &PyList_Type, &ep, &PyList_Type, &quota,
                          &PyList_Type, &sp, &PyList_Type, &dividends, &fund_object))
        return NULL;
    Py_ssize_t rows = PyList_GET_SIZE(ep);
    i64 fund_fen = small(fund_object);
    if (fund_fen <= 0 || PyList_GET_SIZE(quota) != rows || PyList_GET_SIZE(sp) != rows ||
        PyList_GET_SIZE(dividends) != rows)
        Py_RETURN_NONE;
    i64 *payment = PyMem_Malloc(sizeof(i64) * (rows + 1));
    if (payment == NULL) return PyErr_NoMemory();
    PyObject *result = NULL;
    i64 weight_total = 0;
    int python = 0;
    for (Py_ssize_t row = 0; row < rows && !python; row++) {
        i64 held = small(PyList_GET_ITEM(ep, row)), left = small(PyList_GET_ITEM(quota, row));
        python = held < 0 || left < 0 ||
                 __builtin_add_overflow(weight_total, left ? held : 0, &weight_total);
    }
    if (python || weight_total == 0) goto none;
    for (Py_ssize_t row = 0; row < rows; row++) {
        i64 left = small(PyList_GET_ITEM(quota, row));
        i64 weight = left ? small(PyList_GET_ITEM(ep, row)) : 0;
        payment[row] = (i64)((i128)weight * fund_fen / weight_total); /* ≤ fund_fen */
        if (left > 0 && payment[row] >= left) goto none;                /* a cap: water-fill */
        if (payment[row]) {
            i64 sp_fen = small(PyList_GET_ITEM(sp, row));
            i64 received = small(PyList_GET_ITEM(dividends, row));
            if (sp_fen < 0 || received < 0 || sp_fen > LLONG_MAX - payment[row] ||
                received > LLONG_MAX - payment[row])
                goto none;
        }
    }
    PyObject *payments = PyList_New(rows);
    if (payments == NULL) goto done;
    for (Py_ssize_t row = 0; row < rows; row++) {
        i64 fen = payment[row];
        PyObject *paid = PyLong_FromLongLong(fen);
        if (paid == NULL) {
            Py_DECREF(payments);
            goto done;
        }
        PyList_SET_ITEM(payments, row, paid);
        if (fen && (set_small(quota, row, small(PyList_GET_ITEM(quota, row)) - fen) < 0 ||
                    set_small(sp, row, small(PyList_GET_ITEM(sp, row)) + fen) < 0 ||
                    set_small(dividends, row, small(PyList_GET_ITEM(dividends, row)) + fen) < 0)) {
            Py_DECREF(payments);
            goto done;
        }
    }
    result = Py_BuildValue("(NL)", payments, weight_total);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(payment);
    return result;
}

static PyMethodDef methods[] = {
    {"place_orders", place_orders, METH_VARARGS,
     "place_orders(engine, orders, config) -> list[bool]: see Engine.place_orders."},
    {"holding_fund", holding_fund, METH_VARARGS,
     "holding_fund(ep, quota, sp, dividends, fund_fen) -> (payments, weight_total) | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "The rules engine's compiled kernel (see _kernel.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    for (int name = 0; name < NAMES; name++) {
        NAME[name] = PyUnicode_InternFromString(NAME_TEXT[name]);
        if (NAME[name] == NULL) return NULL;
    }
    return PyModule_Create(&module);
}
