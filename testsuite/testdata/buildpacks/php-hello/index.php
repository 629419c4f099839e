<?php
// Answers its message.txt, and proves PHP ran (not a static file) with a computed suffix.
header('Content-Type: text/plain; charset=utf-8');
echo trim(file_get_contents(__DIR__ . '/message.txt')), ' (php ', 6 * 7, ')';
