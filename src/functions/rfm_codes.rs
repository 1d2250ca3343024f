//! The 125-code RFM segment map, one entry per `RFM` code from 111 to 555.
//!
//! Source: the RFM segment table of the Squeezely RFM app documentation, kept as
//! `data/rfm/segments_by_rfm_code.csv`; a unit test checks this table against that
//! file.

/// The 11 segment names, best first.
pub const SEGMENTS: [&str; 11] = [
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
];

const CHAMPIONS: &str = SEGMENTS[0];
const LOYAL: &str = SEGMENTS[1];
const POTENTIAL_LOYALIST: &str = SEGMENTS[2];
const NEW_CUSTOMERS: &str = SEGMENTS[3];
const PROMISING: &str = SEGMENTS[4];
const NEED_ATTENTION: &str = SEGMENTS[5];
const ABOUT_TO_SLEEP: &str = SEGMENTS[6];
const AT_RISK: &str = SEGMENTS[7];
const CANT_LOSE_THEM: &str = SEGMENTS[8];
const HIBERNATING: &str = SEGMENTS[9];
const LOST: &str = SEGMENTS[10];

/// Segment of code `RFM` at index `(r - 1) * 25 + (f - 1) * 5 + (m - 1)`.
pub const SEGMENT_BY_CODE: [&str; 125] = [
    // 111 to 115
    LOST,
    LOST,
    CANT_LOSE_THEM,
    CANT_LOSE_THEM,
    CANT_LOSE_THEM,
    // 121 to 125
    LOST,
    HIBERNATING,
    HIBERNATING,
    AT_RISK,
    AT_RISK,
    // 131 to 135
    LOST,
    HIBERNATING,
    AT_RISK,
    AT_RISK,
    AT_RISK,
    // 141 to 145
    LOST,
    AT_RISK,
    AT_RISK,
    CANT_LOSE_THEM,
    AT_RISK,
    // 151 to 155
    LOST,
    AT_RISK,
    AT_RISK,
    CANT_LOSE_THEM,
    CANT_LOSE_THEM,
    // 211 to 215
    HIBERNATING,
    HIBERNATING,
    ABOUT_TO_SLEEP,
    CANT_LOSE_THEM,
    CANT_LOSE_THEM,
    // 221 to 225
    ABOUT_TO_SLEEP,
    HIBERNATING,
    HIBERNATING,
    AT_RISK,
    AT_RISK,
    // 231 to 235
    ABOUT_TO_SLEEP,
    HIBERNATING,
    HIBERNATING,
    AT_RISK,
    AT_RISK,
    // 241 to 245
    ABOUT_TO_SLEEP,
    AT_RISK,
    AT_RISK,
    AT_RISK,
    AT_RISK,
    // 251 to 255
    ABOUT_TO_SLEEP,
    AT_RISK,
    AT_RISK,
    AT_RISK,
    AT_RISK,
    // 311 to 315
    NEW_CUSTOMERS,
    ABOUT_TO_SLEEP,
    PROMISING,
    PROMISING,
    PROMISING,
    // 321 to 325
    ABOUT_TO_SLEEP,
    HIBERNATING,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    NEED_ATTENTION,
    // 331 to 335
    ABOUT_TO_SLEEP,
    HIBERNATING,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    LOYAL,
    // 341 to 345
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    LOYAL,
    LOYAL,
    // 351 to 355
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    LOYAL,
    LOYAL,
    // 411 to 415
    NEW_CUSTOMERS,
    NEW_CUSTOMERS,
    PROMISING,
    PROMISING,
    PROMISING,
    // 421 to 425
    NEW_CUSTOMERS,
    NEW_CUSTOMERS,
    POTENTIAL_LOYALIST,
    PROMISING,
    PROMISING,
    // 431 to 435
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    LOYAL,
    // 441 to 445
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    LOYAL,
    CHAMPIONS,
    // 451 to 455
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    CHAMPIONS,
    CHAMPIONS,
    // 511 to 515
    NEW_CUSTOMERS,
    NEW_CUSTOMERS,
    PROMISING,
    PROMISING,
    PROMISING,
    // 521 to 525
    PROMISING,
    PROMISING,
    PROMISING,
    PROMISING,
    PROMISING,
    // 531 to 535
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    NEED_ATTENTION,
    NEED_ATTENTION,
    // 541 to 545
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    LOYAL,
    CHAMPIONS,
    CHAMPIONS,
    // 551 to 555
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    POTENTIAL_LOYALIST,
    CHAMPIONS,
    CHAMPIONS,
];
