/**
 * BOINC's numbers and file names, defined once for the client and app sides.
 * lib/error_numbers.h (exit statuses and error numbers), lib/app_ipc.h / lib/filesys names.
 */
export const EXIT_ABORTED_BY_CLIENT = 194;
export const EXIT_DISK_LIMIT_EXCEEDED = 196;
export const EXIT_TIME_LIMIT_EXCEEDED = 197;
export const EXIT_ABORTED_BY_PROJECT = 202;
export const EXIT_ABORTED_VIA_GUI = 203;
export const EXIT_UNKNOWN = 204;
export const ERR_FILE_TOO_BIG = -131;
export const ERR_NOT_FOUND = -161;
export const ERR_RESULT_START = -185;
export const ERR_RESULT_DOWNLOAD = -186;
export const ERR_TOO_MANY_EXITS = -226;

/** lib/app_ipc.h / api/boinc_api.cpp file names in a slot. */
export const MMAP_FILE_NAME = 'boinc_mmap_file';
export const FINISH_FILE = 'boinc_finish_called';
export const TEMPORARY_EXIT_FILE = 'boinc_temporary_exit';
export const STDERR_FILE = 'stderr.txt';
export const INIT_DATA_FILE = 'init_data.xml';
export const SETUP_COMPLETE_FILE = 'boinc_setup_complete';
